"""Property: whatever the commands, every read model applied in batches of
random sizes holds exactly the rows it holds when applied one event at a time,
on SQLite and PostgreSQL.

Commands run on the aggregates themselves (no services): each service's log is
the events its aggregates recorded, in the order the commands ran. Each example
feeds two emptied generations of every projection (one event per batch, and
batches of random sizes) and compares every row of every table."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import hypothesis
import pytest
from eventsourcing.domain import Aggregate
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from sqlalchemy import delete, select

from application.bootstrap import open_views
from domain import ShopError
from domain.allocation import Allocation
from domain.cart import Cart
from domain.inventory import InventoryItem
from domain.order import Order, OrderStatus
from projections.read_model import ReadModel, generation_tables
from projections.read_models.catalog import READ_MODELS
from projections.store import ViewStore, subscriber_name, tracking_table
from tests.conftest import ENGINES, settings_on
from tests.projections.projection_testing import Feeder

CUSTOMERS = ("customer-1", "customer-2")
PRICES = ("0.01", "6.20", "12.50")
DUE = datetime(2030, 1, 1, tzinfo=UTC)
# The orders a command picks from (the others would refuse it).
ORDERS_READY_FOR = {
    "confirm": {OrderStatus.PLACED},
    "reject": {OrderStatus.PLACED},
    "pay": {OrderStatus.CONFIRMED},
    "ship": {OrderStatus.PAID},
    "cancel": {OrderStatus.CONFIRMED, OrderStatus.PAID},
}


@dataclass(frozen=True)
class Step:
    command: str
    target: int
    """Which cart, order or product (an index, wrapped around)."""
    other: int
    """Which SKU, customer or order a command also names."""
    quantity: int


COMMANDS = (
    "open",
    "add",
    "add",
    "change",
    "remove",
    "check out",
    "abandon",
    "register",
    "receive",
    "adjust",
    "reserve",
    "release",
    "commit",
    "place",
    "allocate",
    "confirm",
    "confirm",
    "reject",
    "pay",
    "ship",
    "ship",
    "cancel",
)

steps = st.lists(
    st.builds(
        Step,
        command=st.sampled_from(COMMANDS),
        target=st.integers(0, 3),
        other=st.integers(0, 3),
        # Small numbers, zero and negatives included, so refusals happen.
        quantity=st.integers(-1, 9),
    ),
    min_size=20,
    max_size=60,
)

# Run before each example's random steps, so that those find carts, products
# and an order to work on (their events are in the logs like any others).
PREAMBLE = (
    Step("open", 0, 0, 0),
    Step("open", 0, 1, 0),
    Step("add", 0, 0, 2),
    Step("add", 1, 1, 1),
    Step("register", 0, 0, 0),
    Step("register", 0, 1, 0),
    Step("register", 0, 2, 0),
    Step("receive", 0, 0, 9),
    Step("receive", 0, 1, 9),
    Step("place", 0, 0, 0),
)


class _NoneYetError(LookupError):
    """A command named a kind of aggregate there is none of yet."""


T = TypeVar("T")


def _pick(aggregates: Sequence[T], index: int) -> T:
    if not aggregates:
        raise _NoneYetError
    return aggregates[index % len(aggregates)]


@dataclass
class World:
    """The aggregates an example's commands work on, and each service's log."""

    skus: list[str]
    carts: list[Cart] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    items: dict[str, InventoryItem] = field(default_factory=dict)
    allocated: set[UUID] = field(default_factory=set)
    logs: dict[str, list[object]] = field(
        default_factory=lambda: {"Carts": [], "Orders": [], "Inventory": []}
    )

    def run(self, step: Step) -> None:
        """Runs one command; a refused one (or one naming an aggregate there
        is none of yet) records nothing."""
        with contextlib.suppress(ShopError, _NoneYetError):
            self._run(step)

    def _run(self, step: Step) -> None:  # noqa: PLR0912 (one branch per command)
        sku = self.skus[step.other % len(self.skus)]
        command, quantity = step.command, step.quantity
        if command == "open":
            self._record("Carts", Cart.open(CUSTOMERS[step.other % 2]))
        elif command in {"add", "change", "remove", "check out", "abandon"}:
            open_carts = [cart for cart in self.carts if cart.status == "open"]
            cart = _pick(open_carts, step.target)
            if command == "add":
                cart.add_item(sku, quantity, PRICES[step.target % len(PRICES)])
            elif command == "change":
                cart.change_quantity(_pick(cart.lines, step.other).sku, quantity)
            elif command == "remove":
                cart.remove_item(_pick(cart.lines, step.other).sku)
            elif command == "check out":
                cart.check_out()
            else:
                cart.abandon()
            self._record("Carts", cart)
        elif command == "register":
            if sku not in self.items:
                item = InventoryItem.register(sku, f"product {sku}", "3.10")
                self.items[sku] = item
                self._record("Inventory", item)
        elif command in {"receive", "adjust", "reserve", "release", "commit"}:
            item = _pick([self.items[sku]] if sku in self.items else [], 0)
            if command == "receive":
                item.receive(quantity)
            elif command == "adjust":
                item.adjust(quantity, "count")
            elif command == "reserve":
                item.reserve(_pick(self.orders, step.target).id, quantity)
            else:
                order_id = _pick(list(item.reservations), step.target)
                if command == "release":
                    item.release(order_id)
                else:
                    item.commit(order_id)
            self._record("Inventory", item)
        elif command == "place":
            self._place(step)
        else:
            self._step_order(step)

    def _place(self, step: Step) -> None:
        """Checks out a cart (if still open) and places its order."""
        cart = _pick(self.carts, step.target)
        if any(order.cart_id == cart.id for order in self.orders):
            return
        if cart.order_id is None:
            cart.check_out()
            self._record("Carts", cart)
        order = Order.place(cart.id, cart.customer_id, list(cart.lines), cart.total)
        self._record("Orders", order)

    def _step_order(self, step: Step) -> None:
        command = step.command
        order = _pick(
            [
                order
                for order in self.orders
                if order.status in ORDERS_READY_FOR.get(command, OrderStatus)
            ],
            step.target,
        )
        if command == "allocate":
            if order.id in self.allocated:
                return
            self.allocated.add(order.id)
            allocation = Allocation.request(order.id, list(order.lines))
            if step.quantity % 2:
                allocation.reserve()
            else:
                allocation.refuse([order.lines[0].sku], "short")
            self._record("Inventory", allocation)
            return
        if command == "confirm":
            order.confirm(DUE + timedelta(days=step.quantity) if step.other else None)
        elif command == "reject":
            order.reject([order.lines[0].sku], "short")
        elif command == "pay":
            order.pay()
        elif command == "ship":
            order.ship()
        else:
            order.cancel("changed mind")
        self._record("Orders", order)

    def _record(self, service: str, aggregate: Aggregate) -> None:
        if isinstance(aggregate, Cart) and aggregate not in self.carts:
            self.carts.append(aggregate)
        if isinstance(aggregate, Order) and aggregate not in self.orders:
            self.orders.append(aggregate)
        self.logs[service].extend(aggregate.collect_events())


@pytest.fixture(scope="module", params=ENGINES)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ViewStore]:
    """One view store per engine for every example."""
    with settings_on(request.param, tmp_path_factory.mktemp("batching")) as settings:
        opened = open_views(settings)
        try:
            yield opened
        finally:
            opened.engine.dispose()


SINGLE, BATCHED = 2, 3


def emptied(store: ViewStore, projection: type[ReadModel]) -> tuple[int, int]:
    """Two generations of the projection, with no rows and no position (the
    tables are made once per store: emptying them is cheaper)."""
    with store.writer.begin() as connection:
        for generation in (SINGLE, BATCHED):
            tables = generation_tables(projection, generation)
            for table in tables.values():
                table.create(connection, checkfirst=True)
                connection.execute(delete(table))
            connection.execute(
                delete(tracking_table).where(
                    tracking_table.c.subscriber
                    == subscriber_name(projection, generation)
                )
            )
    return SINGLE, BATCHED


def all_rows(
    store: ViewStore, projection: type[ReadModel], generation: int
) -> dict[str, list[tuple[Any, ...]]]:
    rows = {}
    with store.engine.connect() as connection:
        for name, table in generation_tables(projection, generation).items():
            found = connection.execute(select(table)).all()
            rows[name] = sorted((tuple(row) for row in found), key=repr)
    return rows


@hypothesis.settings(
    max_examples=20,
    deadline=None,
    # Every example feeds the module's store with aggregates of its own.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(commands=steps, data=st.data())
def test_batches_of_random_sizes_hold_what_one_event_at_a_time_holds(
    store: ViewStore, commands: list[Step], data: st.DataObject
) -> None:
    # given the events of random commands
    world = World(skus=["TEA-1", "MUG-1", "POT-1"])
    for step in (*PREAMBLE, *commands):
        world.run(step)

    for projection in READ_MODELS:
        events = world.logs[projection.follows]
        single, batched = emptied(store, projection)
        # when one generation gets them one at a time, the other in batches
        one_at_a_time = Feeder(store, projection, single)
        for event in events:
            one_at_a_time([event])
        in_batches = Feeder(store, projection, batched)
        remaining = iter(events)
        while batch := list(
            itertools.islice(remaining, data.draw(st.integers(1, 12), "batch"))
        ):
            in_batches(batch)

        # then both hold the same rows
        assert all_rows(store, projection, batched) == all_rows(
            store, projection, single
        ), projection.name


def test_the_commands_reach_every_table() -> None:
    """The property's commands are rich enough to fill every read model."""
    world = World(skus=["TEA-1", "MUG-1", "POT-1"])
    script = [
        Step("open", 0, 0, 0),
        Step("add", 0, 0, 2),
        Step("add", 0, 1, 1),
        Step("add", 0, 0, 1),
        Step("change", 0, 1, 3),
        Step("check out", 0, 0, 0),
        Step("place", 0, 0, 0),
        Step("register", 0, 0, 0),
        Step("receive", 0, 0, 5),
        Step("reserve", 0, 0, 2),
        Step("allocate", 0, 0, 1),
        Step("confirm", 0, 1, 1),
        Step("pay", 0, 0, 0),
        Step("ship", 0, 0, 0),
        Step("commit", 0, 0, 0),
    ]
    for step in script:
        world.run(step)
    assert [type(event).__name__ for event in world.logs["Orders"]] == [
        "Placed",
        "Confirmed",
        "Paid",
        "Shipped",
    ]
    assert len(world.logs["Carts"]) == 6
    assert {type(event).__name__ for event in world.logs["Inventory"]} >= {
        "Registered",
        "StockReceived",
        "StockReserved",
        "ReservationCommitted",
        "Requested",
        "Reserved",
    }
    assert world.orders[0].total == Decimal("0.06")  # 3 + 3 units at 0.01
