"""Order: given past events, when one command, then new events or an error."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain import (
    Cart,
    InvalidIdError,
    InvalidInputError,
    InvalidPriceError,
    InvalidQuantityError,
    InvalidSkuError,
    InvalidTextError,
    Line,
    Order,
    OrderStateError,
    OrderStatus,
    PaymentNotOverdueError,
    order_id_for_cart,
)
from tests.domain.domain_testing import replay, then_nothing, then_one

CART_ID = UUID("5d1a8a52-96a4-4a52-8a39-7a6f0b3c1e01")
LINES = (Line("APPLE", 2, Decimal("1.50")), Line("PEAR", 1, Decimal("0.80")))
TOTAL = Decimal("3.80")
BAD_TEXTS: list[Any] = ["", "   ", "\n\t", "x" * 1_000_000, None, 42]
DUE = datetime(2030, 1, 1, 12, 30, tzinfo=UTC)


def given_placed() -> Order:
    order = Order.place(CART_ID, "customer-1", LINES, TOTAL)
    order.collect_events()
    return order


def given_confirmed() -> Order:
    order = given_placed()
    order.confirm()
    order.collect_events()
    return order


def given_confirmed_with_a_deadline() -> Order:
    order = given_placed()
    order.confirm(payment_due_at=DUE)
    order.collect_events()
    return order


def given_rejected() -> Order:
    order = given_placed()
    order.reject(["PEAR"], "out of stock")
    order.collect_events()
    return order


def given_paid() -> Order:
    order = given_confirmed()
    order.pay()
    order.collect_events()
    return order


def given_shipped() -> Order:
    order = given_paid()
    order.ship()
    order.collect_events()
    return order


def given_cancelled() -> Order:
    order = given_confirmed()
    order.cancel("customer changed their mind")
    order.collect_events()
    return order


GIVEN: dict[OrderStatus, Callable[[], Order]] = {
    OrderStatus.PLACED: given_placed,
    OrderStatus.CONFIRMED: given_confirmed,
    OrderStatus.REJECTED: given_rejected,
    OrderStatus.PAID: given_paid,
    OrderStatus.SHIPPED: given_shipped,
    OrderStatus.CANCELLED: given_cancelled,
}

COMMANDS: dict[str, Callable[[Order], None]] = {
    "confirm": lambda order: order.confirm(),
    "reject": lambda order: order.reject(["PEAR"], "out of stock"),
    "pay": lambda order: order.pay(),
    "ship": lambda order: order.ship(),
    "cancel": lambda order: order.cancel("changed mind"),
    "cancel_unpaid": lambda order: order.cancel_unpaid(DUE + timedelta(days=1)),
}

ALLOWED_FROM: dict[str, set[OrderStatus]] = {
    "confirm": {OrderStatus.PLACED},
    "reject": {OrderStatus.PLACED},
    "pay": {OrderStatus.CONFIRMED},
    "ship": {OrderStatus.PAID},
    "cancel": {OrderStatus.CONFIRMED, OrderStatus.PAID},
    # A paid order is never cancelled for want of payment.
    "cancel_unpaid": {OrderStatus.CONFIRMED},
}

REFUSED = [
    (status, command)
    for command, allowed in ALLOWED_FROM.items()
    for status in OrderStatus
    if status not in allowed
]


# -- place ---------------------------------------------------------------------


def test_place_records_placed_with_the_cart_lines_and_total() -> None:
    order = Order.place(CART_ID, " customer-1 ", LINES, TOTAL)

    placed = then_one(order, Order.Placed)
    assert placed.cart_id == CART_ID
    assert placed.customer_id == "customer-1"
    assert placed.lines == list(LINES)
    assert placed.total == TOTAL
    assert order.status is OrderStatus.PLACED
    assert order.lines == LINES
    assert order.total == TOTAL
    assert order.placed_at == placed.timestamp
    assert order.short_skus == ()
    assert order.confirmed_at is None


def test_the_order_id_derives_from_the_cart_id() -> None:
    first = Order.place(CART_ID, "customer-1", LINES, TOTAL)
    again = Order.place(CART_ID, "customer-1", LINES, TOTAL)
    other = Order.place(uuid4(), "customer-1", LINES, TOTAL)

    assert first.id == again.id == order_id_for_cart(CART_ID)
    assert other.id != first.id


def test_a_checked_out_cart_places_the_order_it_announced() -> None:
    cart = Cart.open("customer-1")
    cart.add_item("APPLE", 2, Decimal("1.50"))
    cart.check_out()
    checked_out = cart.collect_events()[-1]
    assert isinstance(checked_out, Cart.CheckedOut)

    order = Order.place(
        checked_out.originator_id,
        checked_out.customer_id,
        checked_out.lines,
        checked_out.total,
    )

    assert order.id == checked_out.order_id
    assert order.lines == cart.lines


def test_place_accepts_the_cart_id_as_text() -> None:
    order = Order.place(str(CART_ID), "customer-1", LINES, TOTAL)  # type: ignore[arg-type]

    assert order.cart_id == CART_ID
    assert order.id == order_id_for_cart(CART_ID)


def test_place_refuses_no_lines() -> None:
    with pytest.raises(InvalidInputError) as caught:
        Order.place(CART_ID, "customer-1", [], Decimal("0.00"))
    assert caught.value.field == "lines"


def test_place_refuses_a_total_that_does_not_match_the_lines() -> None:
    with pytest.raises(InvalidInputError) as caught:
        Order.place(CART_ID, "customer-1", LINES, Decimal("3.79"))
    assert caught.value.field == "total"


@pytest.mark.parametrize("total", [3.8, "3.80", 380, None])
def test_place_refuses_a_total_that_is_not_a_decimal(total: Any) -> None:
    with pytest.raises(InvalidInputError) as caught:
        Order.place(CART_ID, "customer-1", LINES, total)
    assert caught.value.field == "total"


def test_place_refuses_the_same_sku_on_two_lines() -> None:
    lines = [Line("APPLE", 1, Decimal("1.50")), Line("APPLE", 1, Decimal("1.50"))]

    with pytest.raises(InvalidInputError) as caught:
        Order.place(CART_ID, "customer-1", lines, Decimal("3.00"))
    assert (caught.value.field, caught.value.value) == ("lines", "APPLE")


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (Line("bad sku", 1, Decimal("1.00")), InvalidSkuError),
        (Line("APPLE", 0, Decimal("1.00")), InvalidQuantityError),
        (Line("APPLE", True, Decimal("1.00")), InvalidQuantityError),
        (Line("APPLE", 1, Decimal("-1.00")), InvalidPriceError),
        (Line("APPLE", 1, Decimal("1.005")), InvalidPriceError),
        (("APPLE", 1, Decimal("1.00")), InvalidInputError),
    ],
)
def test_place_refuses_a_malformed_line(line: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        Order.place(CART_ID, "customer-1", [line], Decimal("1.00"))


@pytest.mark.parametrize("lines", ["APPLE", None, 42])
def test_place_refuses_lines_that_are_not_a_sequence(lines: Any) -> None:
    with pytest.raises(InvalidInputError) as caught:
        Order.place(CART_ID, "customer-1", lines, TOTAL)
    assert caught.value.field == "lines"


@pytest.mark.parametrize("customer_id", BAD_TEXTS)
def test_place_refuses_a_bad_customer_id(customer_id: Any) -> None:
    with pytest.raises(InvalidTextError):
        Order.place(CART_ID, customer_id, LINES, TOTAL)


@pytest.mark.parametrize("cart_id", ["not-a-uuid", None, 42, ""])
def test_place_refuses_a_bad_cart_id(cart_id: Any) -> None:
    with pytest.raises(InvalidIdError):
        Order.place(cart_id, "customer-1", LINES, TOTAL)


# -- transitions allowed -------------------------------------------------------


def test_confirm_records_confirmed() -> None:
    order = given_placed()

    order.confirm()

    confirmed = then_one(order, Order.Confirmed)
    assert order.status is OrderStatus.CONFIRMED
    assert order.confirmed_at == confirmed.timestamp


def test_reject_records_rejected_with_the_short_skus_and_reason() -> None:
    order = given_placed()

    order.reject(("PEAR", "APPLE", "PEAR"), " out of stock ")

    rejected = then_one(order, Order.Rejected)
    assert rejected.short_skus == ["APPLE", "PEAR"]
    assert rejected.reason == "out of stock"
    assert order.status is OrderStatus.REJECTED
    assert order.short_skus == ("APPLE", "PEAR")
    assert order.rejection_reason == "out of stock"
    assert order.rejected_at == rejected.timestamp
    assert order.is_final


def test_pay_records_paid_for_the_order_total() -> None:
    order = given_confirmed()

    order.pay()

    paid = then_one(order, Order.Paid)
    assert paid.amount == TOTAL
    assert order.status is OrderStatus.PAID
    assert order.paid_at == paid.timestamp


def test_ship_records_shipped() -> None:
    order = given_paid()

    order.ship()

    shipped = then_one(order, Order.Shipped)
    assert order.status is OrderStatus.SHIPPED
    assert order.shipped_at == shipped.timestamp
    assert order.is_final


@pytest.mark.parametrize("given", [given_confirmed, given_paid])
def test_cancel_records_cancelled_with_the_reason(given: Callable[[], Order]) -> None:
    order = given()

    order.cancel("  changed mind ")

    cancelled = then_one(order, Order.Cancelled)
    assert cancelled.reason == "changed mind"
    assert order.status is OrderStatus.CANCELLED
    assert order.cancellation_reason == "changed mind"
    assert order.cancelled_at == cancelled.timestamp
    assert order.is_final


def test_confirm_with_a_deadline_records_when_payment_is_due() -> None:
    order = given_placed()

    order.confirm(payment_due_at=DUE)

    confirmed = then_one(order, Order.Confirmed)
    assert confirmed.payment_due_at == DUE
    assert order.payment_due_at == DUE


@pytest.mark.parametrize("late_by", [timedelta(0), timedelta(days=3)])
def test_cancel_unpaid_records_cancelled_once_the_deadline_has_passed(
    late_by: timedelta,
) -> None:
    order = given_confirmed_with_a_deadline()

    order.cancel_unpaid(DUE + late_by)

    cancelled = then_one(order, Order.Cancelled)
    assert cancelled.reason == "payment not received by 2030-01-01T12:30:00+00:00"
    assert order.status is OrderStatus.CANCELLED
    assert order.cancellation_reason == cancelled.reason


def test_cancel_unpaid_judges_the_deadline_in_any_time_zone() -> None:
    order = given_confirmed_with_a_deadline()
    paris_winter = timezone(timedelta(hours=1))

    with pytest.raises(PaymentNotOverdueError):
        order.cancel_unpaid(datetime(2030, 1, 1, 13, 29, tzinfo=paris_winter))
    order.cancel_unpaid(datetime(2030, 1, 1, 13, 30, tzinfo=paris_winter))

    then_one(order, Order.Cancelled)


# -- transitions refused -------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "command"),
    REFUSED,
    ids=[f"{command}-when-{status.value}" for status, command in REFUSED],
)
def test_a_command_not_allowed_in_the_status_is_refused(
    status: OrderStatus, command: str
) -> None:
    order = GIVEN[status]()

    with pytest.raises(OrderStateError) as caught:
        COMMANDS[command](order)

    assert (caught.value.order_id, caught.value.status, caught.value.command) == (
        order.id,
        status.value,
        command,
    )
    then_nothing(order)
    assert order.status is status


@pytest.mark.parametrize(
    "status", [OrderStatus.REJECTED, OrderStatus.SHIPPED, OrderStatus.CANCELLED]
)
def test_final_statuses_refuse_every_command(status: OrderStatus) -> None:
    order = GIVEN[status]()

    for command in COMMANDS.values():
        with pytest.raises(OrderStateError):
            command(order)

    then_nothing(order)


def test_cancel_unpaid_refuses_before_the_deadline() -> None:
    order = given_confirmed_with_a_deadline()
    just_before = DUE - timedelta(microseconds=1)

    with pytest.raises(PaymentNotOverdueError) as caught:
        order.cancel_unpaid(just_before)

    assert (caught.value.order_id, caught.value.payment_due_at) == (order.id, DUE)
    assert caught.value.now == just_before
    then_nothing(order)
    assert order.status is OrderStatus.CONFIRMED


def test_cancel_unpaid_refuses_an_order_confirmed_without_a_deadline() -> None:
    order = given_confirmed()

    with pytest.raises(PaymentNotOverdueError) as caught:
        order.cancel_unpaid(DUE)

    assert caught.value.payment_due_at is None
    then_nothing(order)


# -- bad input -----------------------------------------------------------------


@pytest.mark.parametrize("reason", BAD_TEXTS)
def test_reject_refuses_a_bad_reason(reason: Any) -> None:
    order = given_placed()

    with pytest.raises(InvalidTextError):
        order.reject(["PEAR"], reason)

    then_nothing(order)


@pytest.mark.parametrize(
    ("short_skus", "error"),
    [
        ("PEAR", InvalidInputError),
        (["pear"], InvalidSkuError),
        ([None], InvalidSkuError),
    ],
)
def test_reject_refuses_bad_short_skus(short_skus: Any, error: type[Exception]) -> None:
    order = given_placed()

    with pytest.raises(error):
        order.reject(short_skus, "out of stock")

    then_nothing(order)


@pytest.mark.parametrize("reason", BAD_TEXTS)
def test_cancel_refuses_a_bad_reason(reason: Any) -> None:
    order = given_confirmed()

    with pytest.raises(InvalidTextError):
        order.cancel(reason)

    then_nothing(order)


@pytest.mark.parametrize("now", [datetime(2031, 1, 1), "2031-01-01T00:00Z", None])
def test_cancel_unpaid_refuses_a_time_without_a_time_zone(now: Any) -> None:
    order = given_confirmed_with_a_deadline()

    with pytest.raises(InvalidInputError) as caught:
        order.cancel_unpaid(now)

    assert caught.value.field == "now"
    then_nothing(order)


# -- replay --------------------------------------------------------------------


@pytest.mark.parametrize("status", list(OrderStatus))
def test_replaying_the_history_rebuilds_the_same_order(status: OrderStatus) -> None:
    order = Order.place(CART_ID, "customer-1", LINES, TOTAL)
    history = list(order.collect_events())
    path = {
        OrderStatus.PLACED: [],
        OrderStatus.CONFIRMED: ["confirm"],
        OrderStatus.REJECTED: ["reject"],
        OrderStatus.PAID: ["confirm", "pay"],
        OrderStatus.SHIPPED: ["confirm", "pay", "ship"],
        OrderStatus.CANCELLED: ["confirm", "pay", "cancel"],
    }[status]
    for command in path:
        COMMANDS[command](order)
    history += order.collect_events()

    rebuilt = replay(Order, history)

    assert rebuilt == order
    assert rebuilt.status is status
    assert rebuilt.version == len(history)
    assert rebuilt.lines == LINES
    assert (rebuilt.confirmed_at, rebuilt.paid_at, rebuilt.cancelled_at) == (
        order.confirmed_at,
        order.paid_at,
        order.cancelled_at,
    )
