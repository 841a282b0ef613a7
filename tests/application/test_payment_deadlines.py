"""Payment deadlines, on SQLite and PostgreSQL: a confirmed order left unpaid past
its deadline is cancelled once, and its stock released; a paid order never is.
Time is a fake clock the tests move; deadlines are fired by hand."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from application import Settings, Shop
from application.services.audit_metadata import (
    EventMetadata,
    acting_as,
    event_id,
    metadata_of,
)
from application.subscribers.payment_deadline_ticker import ACTOR, PaymentDeadlineTicker
from domain.allocation import Allocation, allocation_id
from domain.errors import InvalidInputError
from domain.order import PAYMENT_NOT_RECEIVED, Order
from projections.read_models.payment_deadlines import payment_deadlines_due
from tests.application.deadline_testing import (
    PAST_DUE,
    TEA_IN_STOCK,
    FakeClock,
    cancellations,
    confirmed_orders,
    deadline_settings,
    order_events,
    stock_tea,
)
from tests.application.shop_testing import TEA


def test_an_order_unpaid_past_its_deadline_is_cancelled_and_its_stock_released(
    settings: Settings,
) -> None:
    clock = FakeClock()
    with Shop(settings=deadline_settings(settings), clock=clock) as shop:
        # given a confirmed order, its stock reserved
        stock_tea(shop)
        [order_id] = confirmed_orders(shop)
        assert shop.get_stock(TEA).reserved == 2
        assert shop.payment_deadlines.fire_due() == []

        # when its deadline passes unpaid
        clock.advance(PAST_DUE)
        fired = shop.payment_deadlines.fire_due()
        shop.wait_until_processed()

        # then the order is cancelled for want of payment and its stock released
        assert fired == [order_id]
        order = shop.get_order(order_id)
        assert order.status == "cancelled"
        assert (order.cancellation_reason or "").startswith(
            f"{PAYMENT_NOT_RECEIVED} by "
        )
        stock = shop.get_stock(TEA)
        assert (stock.reserved, stock.available) == (0, TEA_IN_STOCK)
        assert payment_deadlines_due(shop.views, clock()) == ()


def test_a_paid_order_is_not_cancelled_when_its_deadline_passes(
    settings: Settings,
) -> None:
    clock = FakeClock()
    with Shop(settings=deadline_settings(settings), clock=clock) as shop:
        stock_tea(shop)
        [order_id] = confirmed_orders(shop)
    # No subscriber runs in this shop, so the deadline stays listed after the
    # payment: the ticker meets it and must leave the order alone.
    with Shop(
        settings=deadline_settings(settings), clock=clock, subscribers="workers"
    ) as shop:
        shop.pay_order(order_id)
        clock.advance(PAST_DUE)
        assert [due.order_id for due in payment_deadlines_due(shop.views, clock())] == [
            order_id
        ]

        assert shop.payment_deadlines.fire_due() == []

        assert shop.get_order(order_id).status == "paid"
        assert cancellations(shop, order_id) == []


def test_firing_a_deadline_again_cancels_nothing_more(settings: Settings) -> None:
    clock = FakeClock()
    with Shop(settings=deadline_settings(settings), clock=clock) as shop:
        stock_tea(shop)
        [order_id] = confirmed_orders(shop)
        clock.advance(PAST_DUE)

        first = shop.payment_deadlines.fire_due()
        # at once (the deadline may still be listed), and once it is settled
        again = shop.payment_deadlines.fire_due()
        shop.wait_until_processed()
        after_settling = shop.payment_deadlines.fire_due()

        assert (first, again, after_settling) == ([order_id], [], [])
        assert len(cancellations(shop, order_id)) == 1
        assert shop.get_stock(TEA).reserved == 0


def test_two_tickers_racing_cancel_each_order_exactly_once(settings: Settings) -> None:
    clock = FakeClock()
    with (
        Shop(settings=deadline_settings(settings), clock=clock) as shop,
        # Another process's shop: its own services, connections and ticker.
        Shop(
            settings=deadline_settings(settings), clock=clock, subscribers="workers"
        ) as other,
    ):
        stock_tea(shop)
        order_ids = confirmed_orders(shop, 6)
        clock.advance(PAST_DUE)
        start = threading.Barrier(2)

        def fire(ticker: PaymentDeadlineTicker) -> list[str]:
            start.wait()
            return [str(order_id) for order_id in ticker.fire_due()]

        with ThreadPoolExecutor(2) as pool:
            fired = list(
                pool.map(fire, [shop.payment_deadlines, other.payment_deadlines])
            )
        shop.wait_until_processed()

        assert sorted(fired[0] + fired[1]) == sorted(map(str, order_ids))
        for order_id in order_ids:
            assert len(cancellations(shop, order_id)) == 1
        assert shop.get_stock(TEA).reserved == 0


def test_deadlines_survive_a_restart(settings: Settings) -> None:
    clock = FakeClock()
    # given a shop closed while an order's deadline is still to come
    with Shop(settings=deadline_settings(settings), clock=clock) as shop:
        stock_tea(shop)
        [order_id] = confirmed_orders(shop)
        assert shop.payment_deadlines.fire_due() == []

    # when a new shop starts after the deadline has passed
    clock.advance(PAST_DUE)
    with Shop(settings=deadline_settings(settings), clock=clock) as restarted:
        fired = restarted.payment_deadlines.fire_due()
        restarted.wait_until_processed()

        # then the deadline fires there
        assert fired == [order_id]
        assert restarted.get_order(order_id).status == "cancelled"
        assert restarted.get_stock(TEA).reserved == 0


def test_the_cancellation_belongs_to_the_checkout_and_names_its_cause(
    settings: Settings,
) -> None:
    clock = FakeClock()
    with Shop(settings=deadline_settings(settings), clock=clock) as shop:
        stock_tea(shop)
        with acting_as("customer-0") as checkout:
            [order_id] = confirmed_orders(shop)
        clock.advance(PAST_DUE)

        shop.payment_deadlines.fire_due()
        shop.wait_until_processed()

        [confirmed] = [
            event
            for event in order_events(shop, order_id)
            if isinstance(event, Order.Confirmed)
        ]
        [cancelled] = cancellations(shop, order_id)
        assert metadata_of(cancelled) == EventMetadata(
            actor=ACTOR,
            correlation_id=checkout.correlation_id,
            causation_id=event_id(confirmed),
        )
        # and the release it causes in turn carries the same correlation id
        released = list(shop.inventory.events.get(allocation_id(order_id)))[-1]
        assert isinstance(released, Allocation.Released)
        assert metadata_of(released) == EventMetadata(
            actor="process:allocation",
            correlation_id=checkout.correlation_id,
            causation_id=event_id(cancelled),
        )


def test_a_time_without_a_time_zone_is_refused(shop: Shop) -> None:
    with pytest.raises(InvalidInputError) as caught:
        shop.payment_deadlines.fire_due(datetime(2030, 1, 1))
    assert caught.value.field == "now"
