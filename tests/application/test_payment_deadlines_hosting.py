"""Where the payment-deadline ticker runs: in an embedded shop's own process, and
in the worker of the ``payment_deadlines`` read model."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from eventsourcing.persistence import Notification

from application import Settings, Shop
from application.subscribers.hosting import run_worker
from domain.order import Order
from projections.read_models.payment_deadlines import PaymentDeadlines
from tests.application.deadline_testing import (
    PAST_DUE,
    FakeClock,
    confirmed_orders,
    deadline_settings,
    stock_tea,
)
from tests.application.shop_testing import TEA

# Bounds on waiting for something that happens in well under a second.
PATIENCE_SECONDS = 30.0


def test_an_embedded_shop_fires_deadlines_by_itself(settings: Settings) -> None:
    clock = FakeClock()
    with Shop(
        settings=deadline_settings(settings, tick_seconds=0.01), clock=clock
    ) as shop:
        stock_tea(shop)
        [order_id] = confirmed_orders(shop)
        ticker = shop.subscribers.deadline_runner
        assert ticker is not None

        clock.advance(PAST_DUE)
        assert ticker.wait_for_tick(PATIENCE_SECONDS)
        shop.wait_until_processed()

        assert shop.get_order(order_id).status == "cancelled"
        assert shop.get_stock(TEA).reserved == 0


def test_a_shop_left_to_workers_runs_no_ticker(settings: Settings) -> None:
    with Shop(settings=settings, subscribers="workers") as shop:
        ticker = shop.subscribers.deadline_runner
        assert ticker is not None
        assert not ticker.is_alive
        assert not ticker.wait_for_tick(PATIENCE_SECONDS)


def test_the_payment_deadlines_worker_fires_deadlines(settings: Settings) -> None:
    # given an order confirmed with a deadline that has passed at once, by a
    # shop whose own ticker never ran
    due_at_once = replace(settings, payment_timeout=timedelta(0))
    with Shop(settings=replace(due_at_once, deadline_tick_seconds=3600)) as shop:
        stock_tea(shop)
        [order_id] = confirmed_orders(shop)

    worker_settings = replace(due_at_once, deadline_tick_seconds=0.01)
    with Shop(settings=worker_settings, subscribers="workers") as shop:
        stopping = threading.Event()
        failures: list[BaseException] = []

        def work() -> None:
            try:
                run_worker(
                    worker_settings,
                    [PaymentDeadlines.name],
                    shop.services,
                    shop.views,
                    stopping,
                )
            except BaseException as error:
                failures.append(error)

        # when the worker of the payment_deadlines read model runs
        recorder = shop.orders.recorder
        with recorder.subscribe(gt=recorder.max_notification_id()) as written:
            worker = threading.Thread(target=work)
            worker.start()
            try:
                batch: Sequence[Notification] = written.next_batch(  # type: ignore[attr-defined]
                    timeout=PATIENCE_SECONDS
                )
            finally:
                stopping.set()
                worker.join()

        # then it has cancelled the order, and nothing else
        assert failures == []
        new_events = [shop.orders.mapper.to_domain_event(note) for note in batch]
        assert [type(event) for event in new_events] == [Order.Cancelled]
        assert new_events[0].originator_id == order_id
