"""Loading many aggregates at once, on SQLite and PostgreSQL: the same state the
library's repository rebuilds one by one, in one read of their events (and one
of their snapshots), starting after each one's latest snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.domain import Aggregate

from application import Settings
from application.persistence.sqlite import IDS_PER_STATEMENT
from application.services.loading import AggregateLoader
from domain.cart import Cart
from domain.inventory import InventoryItem
from tests.application.shop_testing import TEA, TEA_NAME, TEA_PRICE, item_state
from tests.domain.domain_testing import replay
from tests.saga.process_driving import Services, spy_on

SNAPSHOT_INTERVAL = 50


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    with Services.opened(settings) as opened:
        yield opened


def state(aggregate: Aggregate) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def test_many_aggregates_load_in_one_read_as_the_repository_rebuilds_them(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    carts = services.carts
    # given more carts than SQLite takes ids in one statement, some with items
    stored = [Cart.open(f"customer-{n}") for n in range(IDS_PER_STATEMENT + 50)]
    for n, cart in enumerate(stored[::7]):
        cart.add_item(TEA, 1 + n % 3, TEA_PRICE)
    carts.save(*stored)
    never_stored = uuid4()
    reads = spy_on(monkeypatch, carts.recorder, "select_events_after")

    # when the loader loads them all, and an id nothing was stored under
    loaded = AggregateLoader(carts).load([cart.id for cart in stored] + [never_stored])

    # then it read every event once, from the start, and rebuilt each cart as
    # the repository does; the unknown id is simply absent
    assert reads == [{**{cart.id: 0 for cart in stored}, never_stored: 0}]
    assert loaded.keys() == {cart.id for cart in stored}
    for cart in stored:
        assert state(loaded[cart.id]) == state(carts.repository.get(cart.id))


def test_loading_starts_from_the_latest_snapshot(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = services.inventory
    # given an item saved with 120 events at once: snapshots at 50 and 100
    item = InventoryItem.register(TEA, TEA_NAME, TEA_PRICE)
    for _ in range(119):
        item.receive(1)
    inventory.save(item)
    assert inventory.snapshots is not None
    assert [s.originator_version for s in inventory.snapshots.get(item.id)] == [
        SNAPSHOT_INTERVAL,
        2 * SNAPSHOT_INTERVAL,
    ]
    reads = spy_on(monkeypatch, inventory.recorder, "select_events_after")

    # when the loader loads it
    (loaded,) = AggregateLoader(inventory).load([item.id]).values()

    # then only the events after the latest snapshot were read, and the state
    # is what replaying every event gives
    assert reads == [{item.id: 2 * SNAPSHOT_INTERVAL}]
    assert isinstance(loaded, InventoryItem)
    replayed = replay(InventoryItem, inventory.events.get(item.id))
    assert item_state(loaded) == item_state(replayed)
    assert loaded.on_hand == 119


def test_latest_snapshots_of_several_items_in_one_read(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = services.inventory
    # given items with 0, 1 and 2 snapshots
    items = [InventoryItem.register(f"SKU-{n}", "item", TEA_PRICE) for n in range(3)]
    for snapshots, item in enumerate(items):
        for _ in range(snapshots * SNAPSHOT_INTERVAL):
            item.receive(1)
    inventory.save(*items)
    assert inventory.snapshots is not None
    latest = spy_on(monkeypatch, inventory.snapshots.recorder, "select_latest_events")
    after = spy_on(monkeypatch, inventory.recorder, "select_events_after")

    # when they are loaded together
    loaded = AggregateLoader(inventory).load([item.id for item in items])

    # then one read found the latest snapshot of each that has one, and one
    # read the events after them
    assert len(latest) == 1
    assert after == [
        {
            items[0].id: 0,
            items[1].id: SNAPSHOT_INTERVAL,
            items[2].id: 2 * SNAPSHOT_INTERVAL,
        }
    ]
    for item in items:
        rebuilt: InventoryItem = inventory.repository.get(item.id)
        assert isinstance(one := loaded[item.id], InventoryItem)
        assert item_state(one) == item_state(rebuilt)
