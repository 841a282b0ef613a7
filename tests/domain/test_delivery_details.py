"""Delivery details: what checkout takes, how bad values are refused, and how
carts and orders carry them (given / when / then)."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from domain.cart import Cart
from domain.customer import CustomerErasure, customer_erasure_id
from domain.errors import (
    CustomerForgottenError,
    InvalidEmailError,
    InvalidInputError,
    InvalidTextError,
)
from domain.order import Order
from domain.values import (
    FORGOTTEN,
    MAX_ADDRESS_LENGTH,
    DeliveryDetails,
    Line,
    parse_delivery_details,
)

ADA = DeliveryDetails("customer-1", "Ada Example", "ada@example.org", "1 Test Row")


def a_cart_with_tea(customer_id: str = "customer-1") -> Cart:
    cart = Cart.open(customer_id)
    cart.add_item("TEA", 2, Decimal("6.20"))
    cart.collect_events()
    return cart


def test_valid_details_are_kept_stripped() -> None:
    details = parse_delivery_details(
        "customer-1", " Ada Example ", "ada@example.org", " 1 Test Row "
    )
    assert details == ADA
    assert not details.forgotten


@pytest.mark.parametrize(
    ("name", "email", "address", "error", "field"),
    [
        ("", "ada@example.org", "1 Test Row", InvalidTextError, "name"),
        ("Ada\x00", "ada@example.org", "1 Test Row", InvalidTextError, "name"),
        ("Ada\nLovelace", "ada@example.org", "1 Test Row", InvalidTextError, "name"),
        ("x" * 201, "ada@example.org", "1 Test Row", InvalidTextError, "name"),
        (FORGOTTEN, "ada@example.org", "1 Test Row", InvalidTextError, "name"),
        ("Ada", "ada.example.org", "1 Test Row", InvalidEmailError, "email"),
        ("Ada", "ada@example", "1 Test Row", InvalidEmailError, "email"),
        ("Ada", "ada @example.org", "1 Test Row", InvalidEmailError, "email"),
        ("Ada", "", "1 Test Row", InvalidEmailError, "email"),
        ("Ada", None, "1 Test Row", InvalidEmailError, "email"),
        ("Ada", "a" * 250 + "@x.org", "1 Test Row", InvalidEmailError, "email"),
        ("Ada", "ada@example.org", "", InvalidTextError, "address"),
        ("Ada", "ada@example.org", 42, InvalidTextError, "address"),
        (
            "Ada",
            "ada@example.org",
            "x" * (MAX_ADDRESS_LENGTH + 1),
            InvalidTextError,
            "address",
        ),
    ],
)
def test_bad_details_are_refused_with_a_typed_error(
    name: object,
    email: object,
    address: object,
    error: type[InvalidInputError],
    field: str,
) -> None:
    with pytest.raises(error) as refused:
        parse_delivery_details("customer-1", name, email, address)
    assert refused.value.field == field


def test_the_forgotten_marker_reads_forgotten_in_every_personal_field() -> None:
    marker = DeliveryDetails.forgotten_for("customer-1")
    assert marker.forgotten
    assert (marker.name, marker.email, marker.address) == (FORGOTTEN,) * 3
    assert marker.customer_id == "customer-1"


def test_checking_out_with_details_records_them() -> None:
    cart = a_cart_with_tea()
    cart.check_out(ADA)
    [checked_out] = cart.collect_events()
    assert isinstance(checked_out, Cart.CheckedOut)
    assert checked_out.delivery == ADA


def test_checking_out_without_details_records_none() -> None:
    cart = a_cart_with_tea()
    cart.check_out()
    [checked_out] = cart.collect_events()
    assert isinstance(checked_out, Cart.CheckedOut)
    assert checked_out.delivery is None


def test_details_of_another_customer_are_refused_and_nothing_recorded() -> None:
    cart = a_cart_with_tea("customer-2")
    with pytest.raises(InvalidInputError):
        cart.check_out(ADA)
    assert cart.collect_events() == []


def test_the_forgotten_marker_cannot_check_out() -> None:
    cart = a_cart_with_tea()
    with pytest.raises(CustomerForgottenError) as refused:
        cart.check_out(DeliveryDetails.forgotten_for("customer-1"))
    assert refused.value.customer_id == "customer-1"
    assert cart.collect_events() == []


def test_an_order_keeps_the_details_it_was_placed_with() -> None:
    lines = [Line("TEA", 2, Decimal("6.20"))]
    order = Order.place(uuid4(), "customer-1", lines, Decimal("12.40"), ADA)
    [placed] = order.collect_events()
    assert isinstance(placed, Order.Placed)
    assert placed.delivery == ADA
    assert order.delivery == ADA


def test_an_order_may_be_placed_with_the_forgotten_marker() -> None:
    # A cart checked out just before its customer was forgotten.
    marker = DeliveryDetails.forgotten_for("customer-1")
    lines = [Line("TEA", 2, Decimal("6.20"))]
    order = Order.place(uuid4(), "customer-1", lines, Decimal("12.40"), marker)
    assert order.delivery == marker


def test_an_order_refuses_details_of_another_customer() -> None:
    lines = [Line("TEA", 2, Decimal("6.20"))]
    with pytest.raises(InvalidInputError):
        Order.place(uuid4(), "customer-2", lines, Decimal("12.40"), ADA)


def test_a_customer_erasure_names_only_the_customer_id() -> None:
    erasure = CustomerErasure.forget("customer-1")
    [forgotten] = erasure.collect_events()
    assert isinstance(forgotten, CustomerErasure.Forgotten)
    assert forgotten.customer_id == "customer-1"
    assert erasure.id == customer_erasure_id("customer-1")
    assert CustomerErasure.forget("customer-1").id == erasure.id
