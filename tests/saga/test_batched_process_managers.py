"""Batched process managers, on SQLite and PostgreSQL: what a batch needs is
read at once, a cached aggregate is brought up to date before it is used,
nothing a failed or conflicting batch touched stays cached, and a batch's
snapshots are taken from what it recorded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from application import Settings
from application.services import Inventory
from application.services.batch import Batch
from domain.allocation import allocation_id
from domain.inventory import InventoryItem
from domain.order import Order
from domain.values import inventory_item_id, order_id_for_cart
from tests.application.shop_testing import item_state
from tests.domain.domain_testing import replay
from tests.saga.process_driving import Services, spy_on

TEA = "TEA-1"
MUG = "MUG-1"
PRICE = "2.50"
TEA_ID = inventory_item_id(TEA)
SNAPSHOT_INTERVAL = 50


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    with Services.opened(settings) as opened:
        for sku in (TEA, MUG):
            opened.inventory.register_product(sku, sku, PRICE)
        yield opened


def checked_out(services: Services, customer: str, *lines: tuple[str, int]) -> UUID:
    """Checks a cart out; returns the id of its order."""
    cart_id = services.carts.open_cart(customer)
    for sku, quantity in lines:
        price = services.inventory.get_stock(sku).price
        services.carts.add_item(cart_id, sku, quantity, price)
    services.carts.check_out(cart_id)
    return order_id_for_cart(cart_id)


def status(services: Services, order_id: UUID) -> str:
    return services.orders.get_order(order_id).status


def reservations_of(services: Services, order_id: UUID) -> list[int]:
    """The quantities of every stored StockReserved of the order."""
    return [
        event.quantity
        for event in services.inventory.events.get(TEA_ID)
        if isinstance(event, InventoryItem.StockReserved) and event.order_id == order_id
    ]


def given_tea_cached_after_one_order(services: Services) -> None:
    """5 TEA in stock, 1 reserved for a first order: TEA is in the cache."""
    services.inventory.receive_stock(TEA, 5)
    checked_out(services, "ann", (TEA, 1))
    services.settle()
    assert services.subscribers["allocation"].loader.is_cached(TEA_ID)


def test_a_cached_item_is_brought_up_to_date_when_stock_arrives_between_batches(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the allocation holding TEA in its cache, after reserving the one
    # unit in stock for a first order
    services.inventory.receive_stock(TEA, 1)
    first = checked_out(services, "ann", (TEA, 1))
    services.settle()
    assert status(services, first) == "confirmed"
    assert services.subscribers["allocation"].loader.is_cached(TEA_ID)
    cached_version = services.inventory.get_stock(TEA).version

    # when stock arrives (a command, outside the process manager) and a second
    # order needs it
    services.inventory.receive_stock(TEA, 2)
    second = checked_out(services, "bob", (TEA, 2))
    services.feed("checkout")
    assert services.inventory.snapshots is not None
    snapshot_reads = spy_on(
        monkeypatch, services.inventory.snapshots.recorder, "select_latest_events"
    )
    event_reads = spy_on(
        monkeypatch, services.inventory.recorder, "select_events_after"
    )
    services.feed("allocation")

    # then the cached item was read from after its cached version (no
    # snapshot, no replay), and it had the new stock for the second order
    assert event_reads == [{allocation_id(second): 0, TEA_ID: cached_version}]
    assert all(TEA_ID not in ids for ids in snapshot_reads)
    services.settle()
    assert status(services, second) == "confirmed"
    assert services.inventory.get_stock(TEA).reserved == 3


def test_a_batch_that_fails_leaves_nothing_of_its_changes_in_the_cache(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given TEA in the allocation's cache
    given_tea_cached_after_one_order(services)
    allocation = services.subscribers["allocation"]

    # when the next batch fails after its reaction has reserved stock in memory
    allocate = Inventory._reactions[Order.Placed]

    def allocate_then_fail(
        inventory: Inventory, placed: Order.Placed, batch: Batch
    ) -> None:
        allocate(inventory, placed, batch)
        raise RuntimeError("failed after reserving")

    monkeypatch.setitem(Inventory._reactions, Order.Placed, allocate_then_fail)
    second = checked_out(services, "bob", (TEA, 2))
    services.feed("checkout")
    with pytest.raises(RuntimeError, match="failed after reserving"):
        services.feed("allocation")

    # then the item left the cache, and the batch done again reserves once
    assert not allocation.loader.is_cached(TEA_ID)
    monkeypatch.setitem(Inventory._reactions, Order.Placed, allocate)
    services.settle()
    assert status(services, second) == "confirmed"
    assert reservations_of(services, second) == [2]
    assert services.inventory.get_stock(TEA).reserved == 1 + 2


def test_a_batch_that_collides_with_a_command_is_redone_on_fresh_state(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given TEA in the allocation's cache, and a second order placed
    given_tea_cached_after_one_order(services)
    second = checked_out(services, "bob", (TEA, 2))
    services.feed("checkout")

    # when stock arrives between the batch's loading and its recording, once
    prefetch = Inventory.prefetch
    attempts: list[int] = []

    def prefetch_then_deliver(inventory: Inventory, events: Any, batch: Batch) -> None:
        prefetch(inventory, events, batch)
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            services.inventory.receive_stock(TEA, 10)

    monkeypatch.setattr(Inventory, "prefetch", prefetch_then_deliver)
    services.feed("allocation")

    # then the batch lost the race, was redone on the stored state, and both
    # the delivery and the reservation stand
    assert attempts == [1, 2]
    item = services.inventory.get_stock(TEA)
    assert (item.on_hand, item.reserved) == (5 + 10, 1 + 2)
    assert reservations_of(services, second) == [2]
    stored_kinds = [type(e).__name__ for e in services.inventory.events.get(TEA_ID)]
    assert stored_kinds[-2:] == ["StockReceived", "StockReserved"]


def test_an_aggregate_changed_beyond_what_was_recorded_is_not_kept(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a reaction that also changes an item without recording it
    services.inventory.receive_stock(TEA, 5)
    allocate = Inventory._reactions[Order.Placed]

    def allocate_and_tamper(
        inventory: Inventory, placed: Order.Placed, batch: Batch
    ) -> None:
        allocate(inventory, placed, batch)
        item = batch.load(TEA_ID, InventoryItem)
        assert item is not None
        item.receive(100)

    monkeypatch.setitem(Inventory._reactions, Order.Placed, allocate_and_tamper)

    # when its batch is recorded
    checked_out(services, "ann", (TEA, 1))
    services.feed("checkout")
    services.feed("allocation")

    # then the item is not cached, so no later batch sees the phantom stock
    assert not services.subscribers["allocation"].loader.is_cached(TEA_ID)
    assert services.inventory.get_stock(TEA).on_hand == 5


def test_a_batch_loads_what_it_needs_in_rounds_of_bulk_reads(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given confirmed orders of MUG, one to ship and one to cancel, and new
    # orders of TEA, all waiting for the allocation (whose cache is empty)
    services.inventory.receive_stock(TEA, 20)
    services.inventory.receive_stock(MUG, 20)
    shipped = checked_out(services, "ann", (MUG, 1))
    cancelled = checked_out(services, "bob", (MUG, 2))
    services.settle()
    services.orders.pay(shipped)
    services.orders.ship(shipped)
    services.orders.cancel(cancelled, "changed my mind")
    placed = [checked_out(services, f"customer-{n}", (TEA, 1)) for n in range(5)]
    services.feed("checkout")
    services.subscribers["allocation"].loader.forget([TEA_ID, inventory_item_id(MUG)])
    assert services.inventory.snapshots is not None
    snapshot_reads = spy_on(
        monkeypatch, services.inventory.snapshots.recorder, "select_latest_events"
    )
    event_reads = spy_on(
        monkeypatch, services.inventory.recorder, "select_events_after"
    )
    single_reads = spy_on(monkeypatch, services.inventory.recorder, "select_events")

    # when the allocation gets them all in one batch
    services.feed("allocation", batch_size=lambda: 100)

    # then a first round read the allocations and TEA; a second, MUG (named
    # by the loaded allocations); nothing was read one aggregate at a time
    first_round = {allocation_id(order) for order in (shipped, cancelled, *placed)}
    assert [set(ids) for ids in event_reads] == [
        first_round | {TEA_ID},
        {inventory_item_id(MUG)},
    ]
    assert len(snapshot_reads) == 2
    assert single_reads == []
    monkeypatch.undo()
    services.settle()
    assert services.inventory.get_stock(MUG).on_hand == 20 - 1
    assert services.inventory.get_stock(MUG).reserved == 0
    assert services.inventory.get_stock(TEA).reserved == 5


def test_a_reaction_loads_on_its_own_what_its_needs_did_not_name(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the allocation's reaction to placed orders declaring no needs
    monkeypatch.setitem(Inventory._needs, Order.Placed, lambda placed, batch: ())
    services.inventory.receive_stock(TEA, 3)
    event_reads = spy_on(
        monkeypatch, services.inventory.recorder, "select_events_after"
    )

    # when two orders are allocated in one batch
    first = checked_out(services, "ann", (TEA, 2))
    second = checked_out(services, "bob", (TEA, 2))
    services.feed("checkout")
    services.feed("allocation", batch_size=lambda: 2)

    # then each reaction loaded what it asked for, one aggregate at a time,
    # and the outcome is the same
    assert [set(ids) for ids in event_reads] == [
        {allocation_id(first)},
        {TEA_ID},
        {allocation_id(second)},
    ]
    services.settle()
    assert (status(services, first), status(services, second)) == (
        "confirmed",
        "rejected",
    )


def test_a_batch_that_crosses_a_snapshot_interval_snapshots_what_it_recorded(
    services: Services,
) -> None:
    # given TEA two events short of its first snapshot (at 50 events)
    for _ in range(SNAPSHOT_INTERVAL - 3):
        services.inventory.receive_stock(TEA, 1)
    before = services.inventory.get_stock(TEA).version
    assert before == SNAPSHOT_INTERVAL - 2
    assert services.inventory.snapshots is not None
    assert list(services.inventory.snapshots.get(TEA_ID)) == []

    # when one batch reserves stock for five orders
    orders = [checked_out(services, f"customer-{n}", (TEA, 1)) for n in range(5)]
    services.feed("checkout")
    services.feed("allocation", batch_size=lambda: 5)

    # then the item was snapshotted once, at the version the batch left it,
    # holding exactly what replaying its events up to there gives
    (snapshot,) = services.inventory.snapshots.get(TEA_ID)
    assert snapshot.originator_version == before + 5
    # (the repository starts from the snapshot, with no event after it)
    from_snapshot: InventoryItem = services.inventory.repository.get(
        TEA_ID, version=snapshot.originator_version
    )
    replayed = replay(InventoryItem, services.inventory.events.get(TEA_ID))
    assert item_state(from_snapshot) == item_state(replayed)
    assert set(from_snapshot.reservations) == set(orders)
