"""Cart: given past events, when one command, then new events or an error."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from domain import (
    Cart,
    CartClosedError,
    CartStatus,
    EmptyCartError,
    InvalidPriceError,
    InvalidQuantityError,
    InvalidSkuError,
    InvalidTextError,
    ItemNotInCartError,
    Line,
    order_id_for_cart,
)
from domain.values import MAX_QUANTITY
from tests.domain.domain_testing import replay, then_nothing, then_one

BAD_QUANTITIES: list[Any] = [0, -1, True, 1.0, 2.5, "3", None, MAX_QUANTITY + 1]
BAD_PRICES: list[Any] = [
    Decimal("0"),
    Decimal("-1.00"),
    0,
    -5,
    1.5,
    float("nan"),
    Decimal("NaN"),
    Decimal("Infinity"),
    Decimal("1.005"),
    "abc",
    "",
    True,
    None,
    Decimal("1000000.01"),
]
BAD_TEXTS: list[Any] = ["", "   ", "\n\t", "x" * 1_000_000, None, 42]
BAD_SKUS: list[Any] = ["", "apple", "A B", "-A", "A" * 65, "É", None, 7]


def given_cart(*items: tuple[str, int, str]) -> Cart:
    """Given an open cart holding these (sku, quantity, unit price) lines."""
    cart = Cart.open("customer-1")
    for sku, quantity, price in items:
        cart.add_item(sku, quantity, Decimal(price))
    cart.collect_events()
    return cart


def given_checked_out_cart() -> Cart:
    cart = given_cart(("APPLE", 2, "1.50"))
    cart.check_out()
    cart.collect_events()
    return cart


def given_abandoned_cart() -> Cart:
    cart = given_cart(("APPLE", 2, "1.50"))
    cart.abandon()
    cart.collect_events()
    return cart


# -- open ----------------------------------------------------------------------


def test_open_records_opened_with_the_customer() -> None:
    cart = Cart.open("  customer-1 ")

    opened = then_one(cart, Cart.Opened)
    assert opened.customer_id == "customer-1"
    assert cart.customer_id == "customer-1"
    assert cart.status is CartStatus.OPEN
    assert cart.lines == ()
    assert cart.total == Decimal("0.00")
    assert cart.order_id is None


def test_each_cart_gets_a_fresh_id() -> None:
    assert Cart.open("c").id != Cart.open("c").id


@pytest.mark.parametrize("customer_id", BAD_TEXTS)
def test_open_refuses_a_bad_customer_id(customer_id: Any) -> None:
    with pytest.raises(InvalidTextError) as caught:
        Cart.open(customer_id)
    assert caught.value.field == "customer_id"


# -- add_item ------------------------------------------------------------------


def test_add_item_records_item_added_and_appends_a_line() -> None:
    cart = given_cart()

    cart.add_item("APPLE", 2, Decimal("1.50"))

    added = then_one(cart, Cart.ItemAdded)
    assert (added.sku, added.quantity, added.unit_price) == (
        "APPLE",
        2,
        Decimal("1.50"),
    )
    assert cart.lines == (Line("APPLE", 2, Decimal("1.50")),)
    assert cart.total == Decimal("3.00")


def test_add_item_accepts_a_price_as_text_or_whole_number() -> None:
    cart = given_cart()

    cart.add_item("APPLE", 1, "2.5")
    assert then_one(cart, Cart.ItemAdded).unit_price == Decimal("2.50")
    cart.add_item("PEAR", 1, 3)
    assert then_one(cart, Cart.ItemAdded).unit_price == Decimal("3.00")


def test_adding_a_sku_already_in_the_cart_adds_to_its_quantity() -> None:
    cart = given_cart(("APPLE", 2, "1.50"), ("PEAR", 1, "0.80"))

    cart.add_item("APPLE", 3, Decimal("1.50"))

    added = then_one(cart, Cart.ItemAdded)
    assert added.quantity == 3
    assert cart.lines == (
        Line("APPLE", 5, Decimal("1.50")),
        Line("PEAR", 1, Decimal("0.80")),
    )


def test_adding_a_sku_again_at_a_new_price_takes_the_latest_price() -> None:
    cart = given_cart(("APPLE", 2, "1.50"))

    cart.add_item("APPLE", 1, Decimal("1.20"))

    then_one(cart, Cart.ItemAdded)
    assert cart.lines == (Line("APPLE", 3, Decimal("1.20")),)
    assert cart.total == Decimal("3.60")


def test_add_item_refuses_a_combined_quantity_above_the_maximum() -> None:
    cart = given_cart(("APPLE", MAX_QUANTITY - 1, "1.00"))

    with pytest.raises(InvalidQuantityError) as caught:
        cart.add_item("APPLE", 2, Decimal("1.00"))

    assert caught.value.value == MAX_QUANTITY + 1
    then_nothing(cart)
    assert cart.quantity_of("APPLE") == MAX_QUANTITY - 1


def test_add_item_allows_a_combined_quantity_of_exactly_the_maximum() -> None:
    cart = given_cart(("APPLE", MAX_QUANTITY - 1, "1.00"))

    cart.add_item("APPLE", 1, Decimal("1.00"))

    then_one(cart, Cart.ItemAdded)
    assert cart.quantity_of("APPLE") == MAX_QUANTITY


@pytest.mark.parametrize("sku", BAD_SKUS)
def test_add_item_refuses_a_bad_sku(sku: Any) -> None:
    cart = given_cart()

    with pytest.raises(InvalidSkuError):
        cart.add_item(sku, 1, Decimal("1.00"))

    then_nothing(cart)


@pytest.mark.parametrize("quantity", BAD_QUANTITIES)
def test_add_item_refuses_a_bad_quantity(quantity: Any) -> None:
    cart = given_cart()

    with pytest.raises(InvalidQuantityError):
        cart.add_item("APPLE", quantity, Decimal("1.00"))

    then_nothing(cart)


@pytest.mark.parametrize("price", BAD_PRICES)
def test_add_item_refuses_a_bad_unit_price(price: Any) -> None:
    cart = given_cart()

    with pytest.raises(InvalidPriceError) as caught:
        cart.add_item("APPLE", 1, price)

    assert caught.value.field == "unit_price"
    then_nothing(cart)


# -- change_quantity -----------------------------------------------------------


def test_change_quantity_records_quantity_changed() -> None:
    cart = given_cart(("APPLE", 2, "1.50"), ("PEAR", 1, "0.80"))

    cart.change_quantity("APPLE", 7)

    changed = then_one(cart, Cart.QuantityChanged)
    assert (changed.sku, changed.quantity) == ("APPLE", 7)
    assert cart.lines == (
        Line("APPLE", 7, Decimal("1.50")),
        Line("PEAR", 1, Decimal("0.80")),
    )


def test_change_quantity_to_the_current_quantity_records_nothing() -> None:
    cart = given_cart(("APPLE", 2, "1.50"))

    cart.change_quantity("APPLE", 2)

    then_nothing(cart)


def test_change_quantity_of_a_sku_not_in_the_cart_is_refused() -> None:
    cart = given_cart(("APPLE", 2, "1.50"))

    with pytest.raises(ItemNotInCartError) as caught:
        cart.change_quantity("PEAR", 1)

    assert (caught.value.cart_id, caught.value.sku) == (cart.id, "PEAR")
    then_nothing(cart)


@pytest.mark.parametrize("quantity", BAD_QUANTITIES)
def test_change_quantity_refuses_a_bad_quantity(quantity: Any) -> None:
    cart = given_cart(("APPLE", 2, "1.50"))

    with pytest.raises(InvalidQuantityError):
        cart.change_quantity("APPLE", quantity)

    then_nothing(cart)


# -- remove_item ---------------------------------------------------------------


def test_remove_item_records_item_removed_and_drops_the_line() -> None:
    cart = given_cart(("APPLE", 2, "1.50"), ("PEAR", 1, "0.80"))

    cart.remove_item("APPLE")

    removed = then_one(cart, Cart.ItemRemoved)
    assert removed.sku == "APPLE"
    assert cart.lines == (Line("PEAR", 1, Decimal("0.80")),)


def test_a_removed_sku_added_again_goes_to_the_end() -> None:
    cart = given_cart(("APPLE", 2, "1.50"), ("PEAR", 1, "0.80"))
    cart.remove_item("APPLE")
    cart.collect_events()

    cart.add_item("APPLE", 1, Decimal("1.50"))

    then_one(cart, Cart.ItemAdded)
    assert [line.sku for line in cart.lines] == ["PEAR", "APPLE"]


def test_remove_item_not_in_the_cart_is_refused() -> None:
    cart = given_cart(("APPLE", 2, "1.50"))

    with pytest.raises(ItemNotInCartError):
        cart.remove_item("PEAR")

    then_nothing(cart)


@pytest.mark.parametrize("sku", BAD_SKUS)
def test_remove_item_refuses_a_bad_sku(sku: Any) -> None:
    cart = given_cart(("APPLE", 2, "1.50"))

    with pytest.raises(InvalidSkuError):
        cart.remove_item(sku)

    then_nothing(cart)


# -- check_out -----------------------------------------------------------------


def test_check_out_records_checked_out_with_the_order_to_place() -> None:
    cart = given_cart(("PEAR", 1, "0.80"), ("APPLE", 2, "1.50"), ("PEAR", 2, "0.80"))

    cart.check_out()

    checked_out = then_one(cart, Cart.CheckedOut)
    assert checked_out.order_id == order_id_for_cart(cart.id)
    assert checked_out.customer_id == "customer-1"
    # Lines keep the order in which their SKUs were first added.
    assert checked_out.lines == [
        Line("PEAR", 3, Decimal("0.80")),
        Line("APPLE", 2, Decimal("1.50")),
    ]
    assert checked_out.total == Decimal("5.40")
    assert cart.status is CartStatus.CHECKED_OUT
    assert cart.order_id == checked_out.order_id
    assert cart.lines == tuple(checked_out.lines)


def test_check_out_of_an_empty_cart_is_refused() -> None:
    cart = given_cart()

    with pytest.raises(EmptyCartError) as caught:
        cart.check_out()

    assert caught.value.cart_id == cart.id
    then_nothing(cart)
    assert cart.status is CartStatus.OPEN


def test_check_out_after_every_line_was_removed_is_refused() -> None:
    cart = given_cart(("APPLE", 2, "1.50"))
    cart.remove_item("APPLE")
    cart.collect_events()

    with pytest.raises(EmptyCartError):
        cart.check_out()

    then_nothing(cart)


# -- abandon -------------------------------------------------------------------


def test_abandon_records_abandoned() -> None:
    cart = given_cart(("APPLE", 2, "1.50"))

    cart.abandon()

    then_one(cart, Cart.Abandoned)
    assert cart.status is CartStatus.ABANDONED
    assert cart.order_id is None


def test_an_empty_cart_can_be_abandoned() -> None:
    cart = given_cart()

    cart.abandon()

    then_one(cart, Cart.Abandoned)


# -- a closed cart refuses every command ----------------------------------------


COMMANDS_ON_A_CLOSED_CART: list[tuple[str, Any]] = [
    ("add_item", lambda cart: cart.add_item("PEAR", 1, Decimal("1.00"))),
    ("add_item (bad input)", lambda cart: cart.add_item("bad sku", 0, 1.5)),
    ("change_quantity", lambda cart: cart.change_quantity("APPLE", 5)),
    ("remove_item", lambda cart: cart.remove_item("APPLE")),
    ("check_out", lambda cart: cart.check_out()),
    ("abandon", lambda cart: cart.abandon()),
]


@pytest.mark.parametrize(
    ("given", "status"),
    [
        (given_checked_out_cart, CartStatus.CHECKED_OUT),
        (given_abandoned_cart, CartStatus.ABANDONED),
    ],
)
@pytest.mark.parametrize(
    "command",
    [command for _, command in COMMANDS_ON_A_CLOSED_CART],
    ids=[name for name, _ in COMMANDS_ON_A_CLOSED_CART],
)
def test_a_closed_cart_refuses_every_command(
    given: Any, status: CartStatus, command: Any
) -> None:
    cart: Cart = given()

    with pytest.raises(CartClosedError) as caught:
        command(cart)

    assert (caught.value.cart_id, caught.value.status) == (cart.id, status.value)
    then_nothing(cart)
    assert cart.status is status


# -- replay --------------------------------------------------------------------


def test_replaying_the_history_rebuilds_the_same_cart() -> None:
    cart = Cart.open("customer-1")
    cart.add_item("APPLE", 2, Decimal("1.50"))
    cart.add_item("PEAR", 1, Decimal("0.80"))
    cart.add_item("APPLE", 1, Decimal("1.40"))
    cart.change_quantity("PEAR", 4)
    cart.add_item("PLUM", 1, Decimal("0.30"))
    cart.remove_item("PLUM")
    cart.check_out()
    history = cart.collect_events()

    rebuilt = replay(Cart, history)

    assert rebuilt == cart
    assert rebuilt.version == len(history)
    assert rebuilt.lines == cart.lines
    assert rebuilt.status is CartStatus.CHECKED_OUT
    assert rebuilt.order_id == order_id_for_cart(cart.id)


def test_replay_does_not_rerun_business_rules() -> None:
    # Rules may tighten over time; events already recorded must still apply.
    cart = Cart.open("customer-1")
    cart.add_item("APPLE", MAX_QUANTITY, Decimal("1.00"))
    history = list(cart.collect_events())
    one_more = Cart.ItemAdded(  # type: ignore[call-arg]
        originator_id=cart.id,
        originator_version=cart.version + 1,
        timestamp=cart.modified_on,
        sku="APPLE",
        quantity=1,
        unit_price=Decimal("1.00"),
    )

    rebuilt = replay(Cart, [*history, one_more])

    assert rebuilt.quantity_of("APPLE") == MAX_QUANTITY + 1


def test_lines_cannot_be_changed_by_callers() -> None:
    cart = given_cart(("APPLE", 2, "1.50"))

    lines = cart.lines

    assert isinstance(lines, tuple)
    with pytest.raises(AttributeError):
        lines[0].quantity = 9  # type: ignore[misc]
    with pytest.raises(AttributeError):
        cart.lines = ()  # type: ignore[misc]
