"""Fuzz: every public command, query and audit filter, given hostile values,
either works or refuses with one of eventshop's typed errors, and a refusal
writes nothing (the row count of every event table is unchanged).

Hostile values: NUL and other control characters, lone surrogates, 10 MB
strings, SQL metacharacters, integers past 64 bits, bools as quantities,
floats, ``Decimal('NaN')``, ``sNaN`` and infinities, times within a day of
year 1 and 9999, crafted cursors and input nested 100,000 deep, mixed with
values that are valid, so that calls get past their first argument.

One shop per engine (module scope) with no subscribers, so nothing writes
behind a call's back; a call that works may change the shop, and the next
call's counts start from what it left.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import AggregateRecorder
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg.sql import SQL, Identifier

from application import Shop
from domain.errors import ShopError
from tests.application.shop_testing import MUG, TEA, World

EAST = timezone(timedelta(hours=5))
WEST = timezone(timedelta(hours=-5))
A_TIME = "2026-01-01T00:00:00+00:00"
AN_ID = str(UUID(int=7))


def nested(depth: int) -> list[Any]:
    """A list nested ``depth`` deep (built without recursion)."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def as_cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


TEN_MEGABYTES = "x" * 10_000_000

HOSTILE_VALUES: list[object] = [
    # text no store should take
    "\x00",
    "a\x00b",
    "TEA-SENCHA\x00",
    "two\nlines",
    "tab\there",
    "esc\x1b[31m",
    "del\x7f",
    "next\x85line",
    "\ud800",
    "ab\udfff",
    TEN_MEGABYTES,
    "",
    " ",
    # SQL metacharacters
    "' OR '1'='1",
    "'; DROP TABLE orders; --",
    '"; SELECT 1; --',
    "%",
    "_",
    "\\",
    "\\x00",
    # numbers that are no quantity, price, offset or version
    True,
    False,
    0,
    -1,
    2**31,
    2**63,
    -(2**63) - 1,
    2**64,
    10**5000,
    0.5,
    1.0,
    float("nan"),
    float("inf"),
    -float("inf"),
    Decimal("NaN"),
    Decimal("sNaN"),
    Decimal("Infinity"),
    Decimal("-Infinity"),
    Decimal("1E+999999"),
    Decimal("1E-999999"),
    "NaN",
    "sNaN",
    "Infinity",
    "1e999999",
    # times a datetime holds only in their own zone
    datetime.min.replace(tzinfo=EAST),
    datetime.max.replace(tzinfo=WEST),
    datetime(1, 1, 1),
    datetime(9999, 12, 31, 23, 59),
    # crafted cursors
    "!!!",
    as_cursor("{"),
    as_cursor('{"not": "a cursor"}'),
    as_cursor("[1, 2, 3]"),
    as_cursor(json.dumps([A_TIME, AN_ID, 2**63])),
    as_cursor(f'["{A_TIME}", "{AN_ID}", {"9" * 5000}]'),
    as_cursor(json.dumps([datetime.max.replace(tzinfo=WEST).isoformat(), AN_ID, 1])),
    as_cursor("[" * 100_000 + "]" * 100_000),
    # deeply nested and other shapes
    nested(100_000),
    {"sku": TEA},
    [TEA],
    (TEA,),
    b"TEA-SENCHA",
    None,
    object(),
]


def hostile() -> st.SearchStrategy[object]:
    """Half the time one of the values above, else anything of a few types."""
    return st.one_of(
        st.sampled_from(HOSTILE_VALUES),
        st.one_of(
            st.text(max_size=20),
            st.integers(),
            st.floats(),
            st.decimals(),
            st.datetimes(timezones=st.timezones() | st.none()),
            st.binary(max_size=8),
            st.lists(st.integers(), max_size=3),
        ),
    )


@dataclass(frozen=True)
class Call:
    """A public entry point, with what a valid value of each argument is."""

    name: str
    run: Callable[..., object]
    valid: tuple[Callable[[World], object], ...]


def w_cart(w: World) -> object:
    return w.cart_id


def w_order(w: World) -> object:
    return w.order_id


def tea(_: World) -> object:
    return TEA


def one(_: World) -> object:
    return 1


def text(_: World) -> object:
    return "fuzz"


def none(_: World) -> object:
    return None


def fresh_key(_: World) -> object:
    """An idempotency key no call was given yet (so a valid call runs)."""
    return uuid4().hex


def _acting(shop: Shop, actor: object, correlation: object) -> None:
    with shop.acting_as(actor, correlation):  # type: ignore[arg-type]
        shop.receive_stock(TEA, 1)


CALLS = [
    Call(
        "register_product",
        lambda s, sku, name, price: s.register_product(sku, name, price),
        (lambda _: "FUZZ-1", text, lambda _: "1.00"),
    ),
    Call("receive_stock", lambda s, a, b: s.receive_stock(a, b), (tea, one)),
    Call("adjust_stock", lambda s, a, b, c: s.adjust_stock(a, b, c), (tea, one, text)),
    Call("get_stock", lambda s, a: s.get_stock(a), (tea,)),
    Call("open_cart", lambda s, a: s.open_cart(a), (text,)),
    Call(
        "receive_stock keyed",
        lambda s, a, b, key: s.receive_stock(a, b, idempotency_key=key),
        (tea, one, fresh_key),
    ),
    Call(
        "open_cart keyed",
        lambda s, a, key: s.open_cart(a, idempotency_key=key),
        (text, fresh_key),
    ),
    Call(
        "add_to_cart",
        lambda s, a, b, c: s.add_to_cart(a, b, c),
        (w_cart, lambda _: MUG, one),
    ),
    Call(
        "change_quantity",
        lambda s, a, b, c: s.change_quantity(a, b, c),
        (w_cart, tea, one),
    ),
    Call("remove_from_cart", lambda s, a, b: s.remove_from_cart(a, b), (w_cart, tea)),
    Call("abandon_cart", lambda s, a: s.abandon_cart(a), (w_cart,)),
    Call("checkout", lambda s, a: s.checkout(a), (w_cart,)),
    Call("get_cart", lambda s, a: s.get_cart(a), (w_cart,)),
    Call("pay_order", lambda s, a: s.pay_order(a), (w_order,)),
    Call("ship_order", lambda s, a: s.ship_order(a), (w_order,)),
    Call("cancel_order", lambda s, a, b: s.cancel_order(a, b), (w_order, text)),
    Call("get_order", lambda s, a: s.get_order(a), (w_order,)),
    Call(
        "a command acting as someone",
        lambda s, actor, correlation: s.receive_stock(
            TEA, 1, actor=actor, correlation_id=correlation
        ),
        (text, lambda _: UUID(int=9)),
    ),
    Call(
        "acting_as",
        _acting,
        (text, lambda _: UUID(int=9)),
    ),
    Call("fire_due", lambda s, now: s.payment_deadlines.fire_due(now), (none,)),
    # the views
    Call("queries.cart", lambda s, a: s.queries.cart(a), (w_cart,)),
    Call("queries.order", lambda s, a: s.queries.order(a), (w_order,)),
    Call(
        "queries.orders",
        lambda s, status, customer, limit, offset: s.queries.orders(
            status=status, customer_id=customer, limit=limit, offset=offset
        ),
        (lambda _: "confirmed", text, lambda _: 10, lambda _: 0),
    ),
    Call(
        "queries.customer_history", lambda s, a: s.queries.customer_history(a), (text,)
    ),
    Call("queries.stock_level", lambda s, a: s.queries.stock_level(a), (tea,)),
    # the audit
    Call("audit.history", lambda s, a: s.audit.history(a), (w_order,)),
    Call(
        "audit.events",
        lambda s, types, services, since, until, actor, sku, customer, newest, limit, cursor: (  # noqa: E501
            s.audit.events(
                event_types=types,
                services=services,
                since=since,
                until=until,
                actor=actor,
                sku=sku,
                customer_id=customer,
                newest_first=newest,
                limit=limit,
                cursor=cursor,
            )
        ),
        (
            lambda _: ["Order.Placed"],
            lambda _: ["Orders"],
            none,
            none,
            none,
            none,
            none,
            lambda _: True,
            lambda _: 5,
            none,
        ),
    ),
    Call("audit.trace", lambda s, a: s.audit.trace(a), (lambda _: UUID(int=9),)),
    Call("audit.stock_movements", lambda s, a: s.audit.stock_movements(a), (tea,)),
    Call(
        "audit.state",
        lambda s, a, version: s.audit.state(a, version=version),
        (w_order, one),
    ),
    Call("audit.state at", lambda s, a, at: s.audit.state(a, at=at), (w_order, none)),
    # the dead letters
    Call(
        "dead_letters.list",
        lambda s, subscriber, status: s.dead_letters.list(subscriber, status),
        (lambda _: "orders", lambda _: "parked"),
    ),
    Call("dead_letters.get", lambda s, a: s.dead_letters.get(a), (w_order,)),
    Call("dead_letters.retry", lambda s, a: s.dead_letters.retry(a), (w_order,)),
    Call(
        "dead_letters.discard",
        lambda s, a, reason: s.dead_letters.discard(a, reason),
        (w_order, text),
    ),
]


@st.composite
def arguments(draw: st.DrawFn, arity: int) -> list[tuple[bool, object]]:
    """Per argument, whether it is hostile and (if so) its value; at least one
    argument is."""
    hostile_at = draw(
        st.lists(st.booleans(), min_size=arity, max_size=arity).filter(any)
    )
    return [
        (is_hostile, draw(hostile()) if is_hostile else None)
        for is_hostile in hostile_at
    ]


# -- counting what is stored ---------------------------------------------------


def event_recorders(shop: Shop) -> Iterator[tuple[str, AggregateRecorder]]:
    for service in shop.services.values():
        yield f"{service.name} events", service.recorder
        if service.snapshots is not None:
            yield f"{service.name} snapshots", service.snapshots.recorder


def row_count(recorder: AggregateRecorder) -> int:
    if isinstance(recorder, PostgresAggregateRecorder):
        statement = SQL("SELECT count(*) AS n FROM {}.{}").format(
            Identifier(recorder.datastore.schema),
            Identifier(recorder.events_table_name),
        )
        with recorder.datastore.get_connection() as connection:
            row = connection.execute(statement).fetchone()
    else:
        assert isinstance(recorder, SQLiteAggregateRecorder)
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT count(*) AS n FROM {recorder.events_table_name}")
            row = cursor.fetchone()
    assert row is not None
    count: int = row["n"] if isinstance(row, dict) else row[0]
    return count


def event_row_counts(shop: Shop) -> dict[str, int]:
    return {name: row_count(recorder) for name, recorder in event_recorders(shop)}


# -- the fuzz ------------------------------------------------------------------


def test_the_counts_see_a_write(world: World) -> None:
    """The counts this module compares move when something is stored."""
    before = event_row_counts(world.shop)

    world.shop.receive_stock(MUG, 1)

    after = event_row_counts(world.shop)
    assert after["Inventory events"] == before["Inventory events"] + 1


@pytest.mark.parametrize("call", CALLS, ids=[call.name for call in CALLS])
@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_hostile_input_gets_a_typed_error_and_writes_nothing(
    world: World, call: Call, data: st.DataObject
) -> None:
    drawn = data.draw(arguments(len(call.valid)), label="arguments")
    values = [
        value if is_hostile else valid(world)
        for (is_hostile, value), valid in zip(drawn, call.valid, strict=True)
    ]
    before = event_row_counts(world.shop)

    try:
        call.run(world.shop, *values)
    except ShopError:
        # refused: then nothing of it was stored
        assert event_row_counts(world.shop) == before, call.name
    # Anything else (OverflowError, DataError, RecursionError, TypeError...)
    # fails the test with its traceback; a call that works may write.
