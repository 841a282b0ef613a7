"""Runners of one process that follow the same log share its reads and its
decoding, on SQLite and PostgreSQL: each page is read once and each event
decoded once for all of them; a runner far behind reads on its own; an event
that cannot be decoded is still a failing event for each runner's fault
policy; and ``wait_until_processed`` still sees every subscriber caught up."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from application.config import FaultPolicy, OnFailure, Settings
from application.shop import Shop
from application.subscribers.fault_handling import SubscriberHaltedError
from application.subscribers.runner import SubscriberRunner
from application.subscribers.shared_log import shared_log
from domain.dead_letter import Failure, ParkedEvent
from domain.inventory import InventoryItem
from projections.audit.indexes import AUDIT_INDEXES
from projections.read_model_subscriber import ReadModelSubscriber
from projections.read_models.stock import StockLevels
from tests.projections.runner_testing import (
    eventually,
    insert_undecodable,
    stock_rows,
)

EVENTS = 1_200

(AUDIT_INVENTORY,) = [index for index in AUDIT_INDEXES if index.follows == "Inventory"]


class RecordingSubscriber:
    """A subscriber that keeps its position and what it handled in memory."""

    def __init__(self, name: str, topics: frozenset[str]) -> None:
        self.name = name
        self.follows = "Inventory"
        self.topics = topics
        self.stored_position: int | None = None
        self.handled: list[object] = []

    def position(self) -> int | None:
        return self.stored_position

    def process(
        self,
        events: Sequence[object],
        *,
        expected_position: int | None,
        new_position: int,
    ) -> bool:
        if expected_position != self.stored_position:
            return False
        self.handled.extend(events)
        self.stored_position = new_position
        return True

    def park(
        self, parked: ParkedEvent, failure: Failure, *, expected_position: int | None
    ) -> bool:
        raise AssertionError(f"nothing should be parked, yet {parked} was")

    def report(self, state: str, error: str | None = None) -> None:
        pass


class Counted:
    """Wraps a recorder's reads and a mapper's decoding, counting per position."""

    def __init__(self, shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read: Counter[int] = Counter()
        self.decoded: Counter[int] = Counter()
        recorder, mapper = shop.inventory.recorder, shop.inventory.mapper
        select, decode = recorder.select_notifications, mapper.to_domain_event

        def counting_select(*args: Any, **kwargs: Any) -> Sequence[Notification]:
            page = select(*args, **kwargs)
            self.read.update(notification.id for notification in page)
            return page

        def counting_decode(stored: Any) -> Any:
            # The repository decodes too (stored events, not notifications).
            if isinstance(stored, Notification):
                self.decoded[stored.id] += 1
            return decode(stored)

        monkeypatch.setattr(recorder, "select_notifications", counting_select)
        monkeypatch.setattr(mapper, "to_domain_event", counting_decode)


@pytest.fixture
def runners() -> Iterator[list[SubscriberRunner]]:
    started: list[SubscriberRunner] = []
    yield started
    for runner in started:
        runner.stop()
    for runner in started:
        runner.join()


def run(
    runners: list[SubscriberRunner],
    shop: Shop,
    subscriber: Any,
    policy: FaultPolicy | None = None,
) -> SubscriberRunner:
    runner = SubscriberRunner(subscriber, shop.inventory, policy=policy)
    runner.start()
    runners.append(runner)
    return runner


def write_history(shop: Shop, receipts: int = EVENTS - 1) -> None:
    """A product and its receipts of one unit each, saved at once."""
    sku = f"SHARED-{uuid.uuid4().hex[:6].upper()}"
    item = InventoryItem.register(sku, "shared", "1.00")
    for _ in range(receipts):
        item.receive(1)
    shop.inventory.save(item)


def test_two_runners_on_one_log_read_each_page_once_and_decode_each_event_once(
    shop: Shop, runners: list[SubscriberRunner], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given two read models of the Inventory log, both running and waiting
    counted = Counted(shop, monkeypatch)
    stock = run(runners, shop, ReadModelSubscriber(StockLevels, shop.views))
    audit = run(runners, shop, ReadModelSubscriber(AUDIT_INVENTORY, shop.views))
    log = shared_log(shop.inventory)
    eventually(lambda: log.followers == 2, 30, "both runners to follow the log")

    # when 1,200 events are written
    write_history(shop)
    head = shop.inventory.log_head()
    assert stock.wait_for(head, timeout=60), stock.error
    assert audit.wait_for(head, timeout=60), audit.error

    # then both handled them, each event read from the store once and
    # decoded once
    assert stock_rows(shop.views)[0].on_hand == EVENTS - 1
    assert sorted(counted.read) == list(range(1, head + 1))
    assert set(counted.read.values()) == {1}
    assert sorted(counted.decoded) == list(range(1, head + 1))
    assert set(counted.decoded.values()) == {1}


def test_a_runner_far_behind_reads_on_its_own_and_misses_nothing(
    shop: Shop, runners: list[SubscriberRunner]
) -> None:
    # given a runner at the head of a long log
    write_history(shop)
    stock = run(runners, shop, ReadModelSubscriber(StockLevels, shop.views))
    head = shop.inventory.log_head()
    assert stock.wait_for(head, timeout=60), stock.error
    log = shared_log(shop.inventory)
    eventually(lambda: log.held == 0, 30, "the window to let go of what it passed")

    # when a subscriber starts from the beginning of the log
    topics = frozenset(
        map(get_topic, (InventoryItem.Registered, InventoryItem.StockReceived))
    )
    fresh = RecordingSubscriber("fresh", topics)
    late = run(runners, shop, fresh)
    assert late.wait_for(head, timeout=60), late.error

    # then it read the log on its own and handled every event once, in order
    assert log.own_reads >= 1
    versions = [event.originator_version for event in fresh.handled]  # type: ignore[attr-defined]
    assert versions == list(range(1, EVENTS + 1))
    # and both follow what comes next from the shared window
    write_history(shop, receipts=4)
    newest = shop.inventory.log_head()
    assert stock.wait_for(newest, timeout=60), stock.error
    assert late.wait_for(newest, timeout=60), late.error
    assert len(fresh.handled) == EVENTS + 5


def fast(on_failure: OnFailure) -> FaultPolicy:
    return FaultPolicy(
        attempts=2, base_delay=0.001, max_delay=0.005, on_failure=on_failure
    )


def test_an_event_that_cannot_be_decoded_is_parked_by_one_runner_and_halts_another(
    shop: Shop, runners: list[SubscriberRunner]
) -> None:
    # given a product, a receipt that cannot be decoded, and a good receipt
    shop.register_product("DECODE-1", "decoding", "1.00")
    bad = insert_undecodable(shop.inventory, InventoryItem.StockReceived)
    shop.receive_stock("DECODE-1", 4)
    head = shop.inventory.log_head()

    # when a read model that parks and a subscriber that stops both run
    topics = frozenset({get_topic(InventoryItem.StockReceived)})
    stopping = RecordingSubscriber("stopping", topics)
    parking = run(
        runners, shop, ReadModelSubscriber(StockLevels, shop.views), fast("park")
    )
    halting = run(runners, shop, stopping, fast("stop"))
    assert parking.wait_for(head, timeout=60), parking.error
    eventually(lambda: not halting.is_alive, 30, "the stopping subscriber to halt")

    # then the read model parked it and handled the good receipt
    (letter,) = shop.dead_letters.list()
    assert (letter.subscriber, letter.position) == ("stock", bad)
    assert letter.error.startswith("UndecodableEventError")
    assert "MapperDeserialisationError" in letter.error
    assert stock_rows(shop.views)[0].on_hand == 4
    # and the other halted before it, having handled nothing
    halt = halting.error
    assert isinstance(halt, SubscriberHaltedError)
    assert halt.position == bad
    assert stopping.handled == []
    assert stopping.stored_position is None


def test_wait_until_processed_sees_subscribers_caught_up_on_events_they_ignore(
    settings: Settings,
) -> None:
    # given an embedded shop, and events that only some subscribers handle
    with Shop(settings=settings) as shop:
        for number in range(5):
            shop.register_product(f"IGNORED-{number}", "ignored", "1.00")

        # when the caller waits for the subscribers
        shop.wait_until_processed(timeout=30)

        # then every follower of the log is at its head, including the one
        # that handles none of those events (its position moves all the same)
        head = shop.inventory.log_head()
        positions = {
            subscriber.name: subscriber.position()
            for subscriber in shop.subscribers.subscribers
            if subscriber.follows == "Inventory"
        }
        assert positions == dict.fromkeys(positions, head)
        assert "confirmation" in positions
        assert stock_rows(shop.views)[0].on_hand == 0


def test_a_runner_that_is_stopped_while_waiting_stops_promptly(
    shop: Shop, runners: list[SubscriberRunner]
) -> None:
    # given a runner waiting at the head of an empty log
    stock = run(runners, shop, ReadModelSubscriber(StockLevels, shop.views))
    log = shared_log(shop.inventory)
    eventually(lambda: log.followers == 1, 30, "the runner to follow the log")

    # when it is stopped, then it ends and leaves the log
    stock.stop()
    stock.join(timeout=30)
    assert not stock.is_alive
    assert log.followers == 0
