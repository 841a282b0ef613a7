"""Inventory items are snapshotted every 50 events, and a snapshot gives back
exactly the state that replaying every event gives."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from application import Settings
from application.services import Inventory
from domain.inventory import InventoryItem
from domain.values import inventory_item_id
from tests.application.shop_testing import TEA, TEA_NAME, TEA_PRICE, item_state
from tests.domain.domain_testing import replay

INTERVAL = 50


def given_a_busy_item(inventory: Inventory, events: int) -> UUID:
    """Registers TEA and gives it ``events`` events in all, of every kind."""
    inventory.register_product(TEA, TEA_NAME, TEA_PRICE)
    inventory.receive_stock(TEA, 500)
    orders: list[UUID] = []
    kinds = ["reserve", "reserve", "release", "reserve", "commit", "receive", "adjust"]
    for n in range(events - 2):
        kind = kinds[n % len(kinds)]
        if kind == "reserve":
            orders.append(uuid4())
            inventory.reserve(TEA, orders[-1], 1 + n % 3)
        elif kind == "release":
            inventory.release(TEA, orders.pop(0))
        elif kind == "commit":
            inventory.commit(TEA, orders.pop(0))
        elif kind == "receive":
            inventory.receive_stock(TEA, 2)
        else:
            counted = inventory.get_stock(TEA).on_hand - 1
            inventory.adjust_stock(TEA, counted, "count")
    item_id = inventory_item_id(TEA)
    assert inventory.get_stock(TEA).version == events
    return item_id


def stored_snapshot_versions(settings: Settings, item_id: UUID) -> list[int]:
    """The snapshot rows, read from the database itself."""
    if settings.engine == "sqlite":
        path = settings.data_dir / "inventory.sqlite3"
        with closing(sqlite3.connect(path)) as conn:
            return [
                row[0]
                for row in conn.execute(
                    "SELECT originator_version FROM stored_snapshots "
                    "WHERE originator_id = ? ORDER BY originator_version",
                    (item_id.hex,),
                )
            ]
    assert settings.postgres is not None
    table = sql.Identifier(settings.postgres.schema, "inventory_snapshots")
    with psycopg.connect(settings.postgres.conninfo()) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT originator_version FROM {} WHERE originator_id = %s "
                "ORDER BY originator_version"
            ).format(table),
            (item_id,),
        ).fetchall()
    return [row[0] for row in rows]


def test_fifty_events_make_a_snapshot(settings: Settings, inventory: Inventory) -> None:
    item_id = given_a_busy_item(inventory, INTERVAL + 11)

    assert inventory.snapshots is not None
    snapshots = list(inventory.snapshots.get(item_id))
    assert [snapshot.originator_version for snapshot in snapshots] == [INTERVAL]
    assert stored_snapshot_versions(settings, item_id) == [INTERVAL]


def test_fewer_than_fifty_events_make_no_snapshot(
    settings: Settings, inventory: Inventory
) -> None:
    item_id = given_a_busy_item(inventory, INTERVAL - 1)

    assert stored_snapshot_versions(settings, item_id) == []


def test_loading_from_a_snapshot_gives_the_state_that_replaying_all_gives(
    inventory: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    item_id = given_a_busy_item(inventory, INTERVAL + 11)
    read_after: list[int | None] = []
    event_store_get = inventory.events.get

    def spy(*args: Any, **kwargs: Any) -> Any:
        read_after.append(kwargs.get("gt"))
        return event_store_get(*args, **kwargs)

    monkeypatch.setattr(inventory.events, "get", spy)

    loaded: InventoryItem = inventory.repository.get(item_id)

    assert read_after == [INTERVAL]  # only the events after the snapshot
    replayed = replay(InventoryItem, event_store_get(item_id))
    assert item_state(loaded) == item_state(replayed)
    assert loaded.version == INTERVAL + 11
    assert loaded.reservations  # the snapshot carried open reservations too


def test_state_at_the_snapshot_agrees_with_replaying_up_to_it(
    inventory: Inventory,
) -> None:
    item_id = given_a_busy_item(inventory, INTERVAL + 11)

    at_snapshot: InventoryItem = inventory.repository.get(item_id, version=INTERVAL)

    replayed = replay(InventoryItem, inventory.events.get(item_id, lte=INTERVAL))
    assert item_state(at_snapshot) == item_state(replayed)
    assert at_snapshot.version == INTERVAL


def test_commands_after_a_snapshot_see_the_full_state(inventory: Inventory) -> None:
    item_id = given_a_busy_item(inventory, INTERVAL + 1)
    before: InventoryItem = inventory.repository.get(item_id)
    order_id = uuid4()

    inventory.reserve(TEA, order_id, before.available)

    after = inventory.get_stock(TEA)
    assert (after.available, after.reserved) == (0, before.reserved + before.available)
    replayed = replay(InventoryItem, inventory.events.get(item_id))
    assert replayed.available == 0
