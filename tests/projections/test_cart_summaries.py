"""Cart summaries, fed with the events a Cart records."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.cart import Cart
from domain.errors import ShopError
from domain.values import Line, order_id_for_cart
from projections.read_models.carts import CartSummaries, CartSummary, cart_summary
from projections.store import ViewStore, subscriber_name
from tests.projections.projection_testing import (
    MUG,
    POT,
    TEA,
    Feeder,
    events_of,
    new_view_store,
    rows,
)


@pytest.fixture
def store(tmp_path: Path) -> ViewStore:
    return new_view_store(tmp_path / "v.sqlite3", CartSummaries)


@pytest.fixture
def feed(store: ViewStore) -> Feeder:
    return Feeder(store, CartSummaries)


def summary_of(store: ViewStore, cart: Cart) -> CartSummary:
    summary = cart_summary(store, cart.id)
    assert summary is not None
    return summary


def test_an_opened_cart_is_open_and_empty(store: ViewStore, feed: Feeder) -> None:
    cart = Cart.open("customer-1")

    feed(events_of(cart))

    assert summary_of(store, cart) == CartSummary(
        cart_id=cart.id,
        customer_id="customer-1",
        status="open",
        lines=(),
        item_count=0,
        total=Decimal("0.00"),
        order_id=None,
        opened_at=cart.created_on,
        updated_at=cart.created_on,
    )


def test_adding_a_sku_again_adds_units_at_the_latest_price(
    store: ViewStore, feed: Feeder
) -> None:
    cart = Cart.open("customer-1")
    cart.add_item(TEA, 2, "6.20")
    cart.add_item(MUG, 1, "12.50")

    cart.add_item(TEA, 3, "5.90")
    feed(events_of(cart))

    summary = summary_of(store, cart)
    assert summary.lines == (
        Line(TEA, 5, Decimal("5.90")),
        Line(MUG, 1, Decimal("12.50")),
    )
    assert (summary.item_count, summary.total) == (6, Decimal("42.00"))
    assert summary.lines == cart.lines
    assert summary.updated_at == cart.modified_on


def test_changing_and_removing_lines_keeps_units_and_total_in_step(
    store: ViewStore, feed: Feeder
) -> None:
    cart = Cart.open("customer-1")
    cart.add_item(TEA, 2, "6.20")
    cart.add_item(MUG, 1, "12.50")
    cart.add_item(POT, 1, "48.00")
    feed(events_of(cart))

    cart.change_quantity(MUG, 4)
    cart.remove_item(TEA)
    feed(events_of(cart))

    summary = summary_of(store, cart)
    assert summary.lines == (
        Line(MUG, 4, Decimal("12.50")),
        Line(POT, 1, Decimal("48.00")),
    )
    assert (summary.item_count, summary.total) == (5, Decimal("98.00"))
    assert [row["sku"] for row in rows(store, CartSummaries, "cart_lines")] == [
        MUG,
        POT,
    ]


def test_a_sku_removed_and_added_again_moves_to_the_end_as_in_the_cart(
    store: ViewStore, feed: Feeder
) -> None:
    cart = Cart.open("customer-1")
    cart.add_item(TEA, 1, "6.20")
    cart.add_item(MUG, 1, "12.50")
    cart.remove_item(TEA)
    cart.add_item(TEA, 2, "6.20")

    feed(events_of(cart))

    assert summary_of(store, cart).lines == cart.lines
    assert [line.sku for line in cart.lines] == [MUG, TEA]


def test_a_checked_out_cart_names_its_order_and_keeps_its_lines(
    store: ViewStore, feed: Feeder
) -> None:
    cart = Cart.open("customer-1")
    cart.add_item(TEA, 2, "6.20")
    feed(events_of(cart))

    cart.check_out()
    feed(events_of(cart))

    summary = summary_of(store, cart)
    assert summary.status == "checked_out"
    assert summary.order_id == order_id_for_cart(cart.id)
    assert summary.lines == (Line(TEA, 2, Decimal("6.20")),)
    assert summary.total == Decimal("12.40")
    assert summary.updated_at == cart.modified_on
    assert summary.opened_at == cart.created_on


def test_an_abandoned_cart_is_abandoned(store: ViewStore, feed: Feeder) -> None:
    cart = Cart.open("customer-1")
    cart.add_item(TEA, 2, "6.20")
    cart.abandon()

    feed(events_of(cart))

    summary = summary_of(store, cart)
    assert (summary.status, summary.order_id) == ("abandoned", None)
    assert summary.item_count == 2


def test_carts_are_kept_apart(store: ViewStore, feed: Feeder) -> None:
    first, second = Cart.open("customer-1"), Cart.open("customer-2")
    first.add_item(TEA, 1, "6.20")
    second.add_item(TEA, 7, "6.20")

    feed(events_of(first, second))

    assert summary_of(store, first).item_count == 1
    assert summary_of(store, second).item_count == 7


def test_an_unknown_cart_has_no_summary(store: ViewStore) -> None:
    assert cart_summary(store, uuid4()) is None


# -- the view agrees with the aggregate, whatever the commands ------------------


@dataclass(frozen=True)
class Command:
    name: str
    sku: str
    quantity: int
    price: str


commands = st.lists(
    st.builds(
        Command,
        name=st.sampled_from(["add", "add", "change", "remove", "checkout"]),
        sku=st.sampled_from([TEA, MUG, POT]),
        quantity=st.integers(min_value=1, max_value=999_999),
        price=st.sampled_from(["0.01", "6.20", "12.50", "999999.99"]),
    ),
    max_size=12,
)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ViewStore]:
    store = new_view_store(
        tmp_path_factory.mktemp("carts") / "v.sqlite3", CartSummaries
    )
    yield store
    store.engine.dispose()


@settings(max_examples=60, deadline=None)
@given(commands=commands, batch_size=st.integers(min_value=1, max_value=5))
def test_the_summary_is_what_the_cart_holds(
    shared_store: ViewStore, commands: list[Command], batch_size: int
) -> None:
    feed = Feeder(shared_store, CartSummaries)
    feed.position = shared_store.positions.position(
        subscriber_name(CartSummaries, 1), CartSummaries.follows
    )
    cart = Cart.open("customer-1")
    for command in commands:
        try:
            if command.name == "add":
                cart.add_item(command.sku, command.quantity, command.price)
            elif command.name == "change":
                cart.change_quantity(command.sku, command.quantity)
            elif command.name == "remove":
                cart.remove_item(command.sku)
            else:
                cart.check_out()
        except ShopError:
            pass  # refused: records nothing, as in the service
    events = events_of(cart)
    for start in range(0, len(events), batch_size):
        feed(events[start : start + batch_size])

    summary = summary_of(shared_store, cart)
    assert summary.lines == cart.lines
    assert summary.total == cart.total
    assert summary.item_count == sum(line.quantity for line in cart.lines)
    assert (summary.status, summary.order_id) == (cart.status, cart.order_id)
    assert summary.updated_at == cart.modified_on
