"""Property, on SQLite and PostgreSQL: the process managers reach the same
outcomes whatever the size of the batches they are fed.

A generated script (checkouts by a few customers against limited stock,
deliveries of stock, payments, shipments, cancellations, and points where the
saga settles) runs twice on fresh stores: once with the process managers fed
one event at a time with no cache (the reference), once in batches of random
sizes with their caches. Both must store the same events per aggregate (types,
order, payloads, up to ids and times) and leave the same final states, and
every command must succeed or fail alike.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import hypothesis
from eventsourcing.domain import Aggregate
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st

from application.services.audit_metadata import acting_as
from application.services.loading import DEFAULT_CACHE_SIZE
from domain.allocation import allocation_id
from domain.errors import NotFoundError, StateError
from domain.values import Line, inventory_item_id, order_id_for_cart
from tests.saga.process_driving import Services, fresh_settings

SKUS = ("TEA-1", "TEA-2", "MUG-1")
PRICE = Decimal("2.50")
STEPS = uuid5(NAMESPACE_URL, "https://eventshop.invalid/tests/steps")


@dataclass(frozen=True)
class CheckOut:
    customer: str
    lines: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Receive:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Pay:
    order: int
    """Index of the checkout whose order it is (modulo how many there are)."""


@dataclass(frozen=True)
class Ship:
    order: int


@dataclass(frozen=True)
class Cancel:
    order: int


@dataclass(frozen=True)
class Settle:
    pass


Step = CheckOut | Receive | Pay | Ship | Cancel | Settle

orders = st.integers(0, 20)
steps = st.one_of(
    st.builds(
        CheckOut,
        st.sampled_from(["ann", "bob", "cy"]),
        st.dictionaries(
            st.sampled_from(SKUS), st.integers(1, 3), min_size=1, max_size=3
        ).map(lambda lines: tuple(sorted(lines.items()))),
    ),
    st.builds(Receive, st.sampled_from(SKUS), st.integers(1, 4)),
    st.builds(Pay, orders),
    st.builds(Ship, orders),
    st.builds(Cancel, orders),
    st.just(Settle()),
)


@dataclass
class Outcome:
    results: list[str]
    """Per step: "ok", or the name of the error the command raised."""
    events: dict[str, list[object]]
    """Per aggregate (by canonical name), its stored events, canonical."""
    states: dict[str, object]


class Names:
    """Canonical names for the ids of one run, so two runs compare: carts get
    their number in the script, and what derives from them follows."""

    def __init__(self) -> None:
        self.of: dict[UUID, str] = {
            inventory_item_id(sku): f"item {sku}" for sku in SKUS
        }

    def cart(self, cart_id: UUID, number: int) -> None:
        order_id = order_id_for_cart(cart_id)
        self.of[cart_id] = f"cart {number}"
        self.of[order_id] = f"order {number}"
        self.of[allocation_id(order_id)] = f"allocation {number}"

    def step(self, number: int | str) -> UUID:
        """The correlation id of a step, the same in every run."""
        correlation_id = uuid5(STEPS, str(number))
        self.of[correlation_id] = f"step {number}"
        return correlation_id

    def canonical(self, value: Any) -> Any:  # noqa: PLR0911
        """The value with ids named and times blanked (they differ between
        runs by nature)."""
        if isinstance(value, UUID):
            return self.of[value]
        if isinstance(value, datetime):
            return "<time>"
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, str):
            return self._canonical_text(value)
        if isinstance(value, Line):
            return (value.sku, value.quantity, value.unit_price)
        if isinstance(value, dict):
            return {self.canonical(k): self.canonical(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.canonical(item) for item in value]
        assert isinstance(value, int | Decimal | type(None)), value
        return value

    def _canonical_text(self, text: str) -> str:
        # Event ids ("<uuid>:<version>") and ids kept as text (reservations).
        match = re.fullmatch(r"([0-9a-f-]{36})(:\d+)?", text)
        if match is None:
            return text
        return self.of[UUID(match.group(1))] + (match.group(2) or "")


def run(
    script: list[Step],
    engine: str,
    batch_size: Callable[[], int] | None = None,
    cache_size: int = 0,
) -> Outcome:
    """Runs the script on a fresh store; the process managers get batches of
    ``batch_size()`` events (default: one at a time) and caches of
    ``cache_size`` aggregates (default: none)."""
    names = Names()
    results: list[str] = []
    feeding = batch_size or (lambda: 1)
    with (
        fresh_settings(engine) as settings,
        Services.opened(settings, cache_size) as services,
    ):
        with acting_as("tester", names.step("setup")):
            for sku in SKUS:
                services.inventory.register_product(sku, sku, PRICE)
        carts: list[UUID] = []
        for number, step in enumerate(script):
            with acting_as("tester", names.step(number)):
                results.append(perform(services, step, carts, names, feeding))
        services.settle(feeding)
        return Outcome(results, *stored(services, names))


def perform(
    services: Services,
    step: Step,
    carts: list[UUID],
    names: Names,
    batch_size: Callable[[], int],
) -> str:
    try:
        match step:
            case CheckOut(customer, lines):
                cart_id = services.carts.open_cart(customer)
                names.cart(cart_id, len(carts))
                carts.append(cart_id)
                for sku, quantity in lines:
                    services.carts.add_item(cart_id, sku, quantity, PRICE)
                services.carts.check_out(cart_id)
            case Receive(sku, quantity):
                services.inventory.receive_stock(sku, quantity)
            case Pay(order) | Ship(order) | Cancel(order) if not carts:
                return "no order yet"
            case Pay(order):
                services.orders.pay(order_id_for_cart(carts[order % len(carts)]))
            case Ship(order):
                services.orders.ship(order_id_for_cart(carts[order % len(carts)]))
            case Cancel(order):
                services.orders.cancel(
                    order_id_for_cart(carts[order % len(carts)]), "changed my mind"
                )
            case Settle():
                services.settle(batch_size)
    except (StateError, NotFoundError) as error:
        return type(error).__name__
    return "ok"


def stored(
    services: Services, names: Names
) -> tuple[dict[str, list[object]], dict[str, object]]:
    events: defaultdict[str, list[object]] = defaultdict(list)
    states: dict[str, object] = {}
    for service in (services.carts, services.orders, services.inventory):
        notifications = service.recorder.select_notifications(
            start=None, limit=1_000_000
        )
        for notification in notifications:
            event = service.mapper.to_domain_event(notification)
            events[names.of[event.originator_id]].append(
                (type(event).__qualname__, names.canonical(vars(event)))
            )
        for aggregate_id in {n.originator_id for n in notifications}:
            assert isinstance(aggregate_id, UUID)
            aggregate: Aggregate = service.repository.get(aggregate_id)
            state = {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}
            states[names.of[aggregate_id]] = names.canonical(state)
    return dict(events), states


examples = hypothesis.settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@examples
# Stock delivered to an item the allocation's cache holds, which refused an
# order before: only a fast-forwarded cache lets the next order have it.
@example(
    stock=[0, 0, 0],
    script=[
        CheckOut("ann", (("TEA-1", 1),)),
        Settle(),
        Receive("TEA-1", 1),
        CheckOut("bob", (("TEA-1", 1),)),
    ],
    sizes=[1],
    cache_size=DEFAULT_CACHE_SIZE,
)
# A shipment and a cancellation in one batch: each needs its allocation loaded
# before it can name the items to load.
@example(
    stock=[5, 0, 5],
    script=[
        CheckOut("ann", (("TEA-1", 2),)),
        CheckOut("bob", (("MUG-1", 1), ("TEA-1", 2))),
        Settle(),
        Pay(0),
        Pay(1),
        Ship(0),
        Cancel(1),
        Settle(),
    ],
    sizes=[4],
    cache_size=DEFAULT_CACHE_SIZE,
)
@given(
    # Little stock, so that orders are refused, and deliveries change that.
    stock=st.lists(st.integers(0, 3), min_size=len(SKUS), max_size=len(SKUS)),
    script=st.lists(steps, min_size=1, max_size=24),
    sizes=st.lists(st.integers(1, 7), min_size=1, max_size=8),
    # Small caches too, so that aggregates also leave them between batches.
    cache_size=st.sampled_from([1, 3, DEFAULT_CACHE_SIZE]),
)
def test_the_saga_reaches_the_same_outcomes_whatever_the_batch_sizes(
    engine: str,
    stock: list[int],
    script: list[Step],
    sizes: list[int],
    cache_size: int,
) -> None:
    # given stock of each SKU, and a script of commands with points of settling
    script = [
        *(
            Receive(sku, quantity)
            for sku, quantity in zip(SKUS, stock, strict=True)
            if quantity
        ),
        *script,
    ]

    # when the process managers are fed one event at a time, without a cache,
    # and on another store in batches of random sizes, with their caches
    one_at_a_time = run(script, engine)
    batched = run(script, engine, itertools.cycle(sizes).__next__, cache_size)

    # then every command fared alike, and the stores hold the same events and
    # end in the same states
    assert batched.results == one_at_a_time.results
    assert batched.events == one_at_a_time.events
    assert batched.states == one_at_a_time.states
