"""Audit queries on SQLite and PostgreSQL: history, filtered and paged events,
traces, stock movements, time travel and output formats."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest

from application import Shop
from application.audit.service import AggregateNotInLogError
from application.cli.audit_rendering import (
    as_csv,
    as_jsonl,
    event_record,
    trace_records,
)
from application.services.audit_metadata import acting_as
from domain.errors import InvalidInputError, InvalidSkuError, InvalidTextError
from projections.audit.queries import AuditEvent
from tests.conftest import ENGINES, settings_on

TEA, MUG = "TEA-1", "MUG-1"

# The first and last moments a datetime holds, in zones whose UTC time is
# beyond them.
EARLIEST_EAST = datetime.min.replace(tzinfo=timezone(timedelta(hours=5)))
LATEST_WEST = datetime.max.replace(tzinfo=timezone(timedelta(hours=-5)))


def as_cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


A_TIME = "2026-01-01T00:00:00+00:00"
AN_ID = str(UUID(int=7))
CRAFTED_CURSORS: dict[str, object] = {
    "not-base64": "!!!",
    "not-ascii": "\u00e9t\u00e9",
    "not-json": as_cursor("{"),
    "an-object": as_cursor('{"not": "a cursor"}'),
    "two-items": as_cursor(json.dumps([A_TIME, AN_ID])),
    "numbers": as_cursor("[1, 2, 3]"),
    "bad-id": as_cursor(json.dumps([A_TIME, "nope", 1])),
    "naive-time": as_cursor(json.dumps(["2026-01-01T00:00:00", AN_ID, 1])),
    "time-beyond-year-1": as_cursor(json.dumps([EARLIEST_EAST.isoformat(), AN_ID, 1])),
    "time-beyond-year-9999": as_cursor(json.dumps([LATEST_WEST.isoformat(), AN_ID, 1])),
    "version-2**63": as_cursor(json.dumps([A_TIME, AN_ID, 2**63])),
    "version-4301-digits": as_cursor(f'["{A_TIME}", "{AN_ID}", {"9" * 4301}]'),
    "version-float": as_cursor(json.dumps([A_TIME, AN_ID, 1.5])),
    "version-bool": as_cursor(json.dumps([A_TIME, AN_ID, True])),
    "version-text": as_cursor(json.dumps([A_TIME, AN_ID, "1"])),
    "nested-100000-deep": as_cursor("[" * 100_000 + "]" * 100_000),
    "10MB": "A" * 10_000_000,
    "an-int": 42,
    "bytes": b"[]",
}


@dataclass(frozen=True)
class World:
    shop: Shop
    cart_id: UUID
    order_id: UUID
    checkout_correlation: UUID
    before_checkout: datetime


@pytest.fixture(scope="module", params=ENGINES)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One shop history per engine, shared by the module's read-only tests."""
    with (
        settings_on(request.param, tmp_path_factory.mktemp("audit")) as settings,
        Shop(settings=settings) as shop,
    ):
        yield build_world(shop)


def build_world(shop: Shop) -> World:
    with acting_as("clerk"):
        shop.register_product(TEA, "Tea", "4.00")
        shop.register_product(MUG, "Mug", "9.00")
        shop.receive_stock(TEA, 10)
        shop.receive_stock(MUG, 2)
    with acting_as("ann"):
        cart_id = shop.open_cart("ann")
        shop.add_to_cart(cart_id, TEA, 3)
        shop.add_to_cart(cart_id, MUG, 1)
    before_checkout = datetime.now(UTC)
    with acting_as("ann") as checkout:
        order_id = shop.checkout(cart_id)
    shop.wait_until_processed()
    with acting_as("ann"):
        shop.pay_order(order_id)
    with acting_as("warehouse"):
        shop.ship_order(order_id)
        shop.wait_until_processed()
        shop.adjust_stock(TEA, 6, "stock count")
    shop.wait_until_processed()
    return World(shop, cart_id, order_id, checkout.correlation_id, before_checkout)


def test_history_lists_every_event_of_one_aggregate_with_who_and_what(
    world: World,
) -> None:
    events = world.shop.audit.history(world.cart_id)
    assert [(e.version, e.event_type, e.actor) for e in events] == [
        (1, "Cart.Opened", "ann"),
        (2, "Cart.ItemAdded", "ann"),
        (3, "Cart.ItemAdded", "ann"),
        (4, "Cart.CheckedOut", "ann"),
    ]
    assert events[1].payload == {"quantity": 3, "sku": TEA, "unit_price": "4.00"}
    assert all(e.occurred_at.tzinfo is not None for e in events)
    assert world.shop.audit.history(UUID(int=1)) == ()


def test_filters_combine_and_pages_cover_everything_once_in_either_direction(
    world: World,
) -> None:
    audit = world.shop.audit
    by_ann = audit.events(actor="ann", limit=1000).events
    assert {e.actor for e in by_ann} == {"ann"}
    assert {e.event_type for e in by_ann} >= {"Cart.Opened", "Order.Paid"}

    placed = audit.events(event_types=["Order.Placed"]).events
    assert [e.aggregate_id for e in placed] == [world.order_id]
    assert placed[0].actor == "process:checkout"

    mug_by_processes = audit.events(sku=MUG, actor="process:allocation").events
    assert {e.event_type for e in mug_by_processes} == {
        "Allocation.Requested",
        "InventoryItem.StockReserved",
        "Allocation.Reserved",
        "InventoryItem.ReservationCommitted",
        "Allocation.Committed",
    }
    customer = audit.events(customer_id="ann", services=["orders"]).events
    assert {e.event_type for e in customer} == {
        "Order.Placed",
        "Order.Confirmed",
        "Order.Paid",
        "Order.Shipped",
    }
    since = audit.events(since=world.before_checkout, actor="ann").events
    assert "Cart.Opened" not in {e.event_type for e in since}
    assert audit.events(until=world.before_checkout, actor="warehouse").events == ()

    everything = audit.events(limit=1000).events
    for newest_first in (True, False):
        seen: list[AuditEvent] = []
        cursor = None
        while True:
            page = audit.events(limit=4, cursor=cursor, newest_first=newest_first)
            seen += page.events
            cursor = page.next_cursor
            if cursor is None:
                break
        assert len(seen) == len(everything) == len(set(seen))
        times = [e.occurred_at for e in seen]
        assert times == sorted(times, reverse=newest_first)


def test_a_trace_shows_the_checkout_as_a_tree_of_causes(world: World) -> None:
    [root] = world.shop.audit.trace(world.checkout_correlation)
    assert root.event.event_type == "Cart.CheckedOut"
    [placed] = root.children
    assert placed.event.event_type == "Order.Placed"
    allocation_steps = [child.event.event_type for child in placed.children]
    assert allocation_steps == [
        "Allocation.Requested",
        "InventoryItem.StockReserved",
        "InventoryItem.StockReserved",
        "Allocation.Reserved",
    ]
    confirmed = [
        grandchild.event.event_type for grandchild in placed.children[-1].children
    ]
    assert confirmed == ["Order.Confirmed"]
    records = list(trace_records((root,)))
    assert [record["depth"] for record in records][:3] == [0, 1, 2]


def test_stock_movements_carry_a_running_balance_that_ends_at_the_stock(
    world: World,
) -> None:
    movements = world.shop.audit.stock_movements(TEA)
    assert [(m.movement, m.quantity, m.on_hand, m.reserved) for m in movements] == [
        ("Registered", 0, 0, 0),
        ("StockReceived", 10, 10, 0),
        ("StockReserved", 3, 10, 3),
        ("ReservationCommitted", 3, 7, 0),
        ("StockAdjusted", -1, 6, 0),
    ]
    assert movements[2].order_id == world.order_id
    assert movements[-1].event.actor == "warehouse"
    stock = world.shop.get_stock(TEA)
    assert (movements[-1].on_hand, movements[-1].reserved) == (
        stock.on_hand,
        stock.reserved,
    )


def test_time_travel_rebuilds_an_aggregate_as_of_a_version_or_a_time(
    world: World,
) -> None:
    audit = world.shop.audit
    at_two = audit.state(world.order_id, version=2)
    assert (at_two.service, at_two.aggregate_type, at_two.version) == (
        "Orders",
        "Order",
        2,
    )
    assert at_two.state["status"] == "confirmed"
    now = audit.state(world.order_id)
    assert now.state["status"] == "shipped"
    placed_at = audit.history(world.order_id)[0].occurred_at
    assert audit.state(world.order_id, at=placed_at).state["status"] == "placed"
    with pytest.raises(AggregateNotInLogError):
        audit.state(world.order_id, at=placed_at - timedelta(days=1))
    with pytest.raises(AggregateNotInLogError):
        audit.state(world.order_id, version=99)
    with pytest.raises(AggregateNotInLogError):
        audit.state(UUID(int=7))


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda a: a.events(event_types=["Nope.Happened"]), InvalidInputError),
        (lambda a: a.events(since=datetime(2026, 1, 1)), InvalidInputError),
        (lambda a: a.events(cursor="not-a-cursor"), InvalidInputError),
        (lambda a: a.events(limit=0), InvalidInputError),
        (lambda a: a.events(services=["Payments"]), InvalidInputError),
        (lambda a: a.events(sku="lower case"), InvalidSkuError),
        (lambda a: a.history("not-a-uuid"), InvalidInputError),
        (lambda a: a.state("x" * 1_000_000), InvalidInputError),
        (lambda a: a.state(UUID(int=7), version=2**63), InvalidInputError),
        (lambda a: a.state(UUID(int=7), version=True), InvalidInputError),
        (lambda a: a.state(UUID(int=7), at=EARLIEST_EAST), InvalidInputError),
        (lambda a: a.events(since=EARLIEST_EAST), InvalidInputError),
        (lambda a: a.events(until=LATEST_WEST), InvalidInputError),
        (lambda a: a.events(limit=2**63), InvalidInputError),
        (lambda a: a.events(limit=1.0), InvalidInputError),
        (lambda a: a.events(actor="ann\x00"), InvalidTextError),
        (lambda a: a.events(actor="ann\tlee"), InvalidTextError),
        (lambda a: a.events(actor="\udcff"), InvalidTextError),
        (lambda a: a.events(customer_id="c\x1b[31m"), InvalidTextError),
        (lambda a: a.events(event_types="Order.Placed"), InvalidInputError),
        (lambda a: a.events(services=5), InvalidInputError),
        (lambda a: a.events(newest_first="no"), InvalidInputError),
        *(
            pytest.param(
                lambda a, cursor=cursor: a.events(cursor=cursor),
                InvalidInputError,
                id=f"cursor-{name}",
            )
            for name, cursor in CRAFTED_CURSORS.items()
        ),
    ],
)
def test_bad_audit_input_gets_a_typed_error(
    world: World, call: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        call(world.shop.audit)  # type: ignore[operator]


def test_filter_values_are_data_not_sql(world: World) -> None:
    hostile = "ann' OR '1'='1"
    assert world.shop.audit.events(actor=hostile).events == ()
    assert world.shop.audit.events(customer_id=hostile).events == ()


def test_events_come_out_as_json_lines_and_csv(world: World) -> None:
    events = world.shop.audit.history(world.cart_id)
    lines = list(as_jsonl(event_record(e) for e in events))
    assert [json.loads(line)["version"] for line in lines] == [1, 2, 3, 4]
    rows = list(
        csv.DictReader(
            io.StringIO(
                as_csv(
                    (event_record(e) for e in events),
                    ["version", "event_type", "payload"],
                )
            )
        )
    )
    assert next(row["event_type"] for row in rows) == "Cart.Opened"
    assert json.loads(rows[1]["payload"])["sku"] == TEA
