"""The Orders service on its own: placing orders and their lifecycle."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from application import Shop
from application.services import Orders
from domain.errors import OrderNotFoundError, OrderStateError
from domain.order import Order
from domain.values import Line, order_id_for_cart

LINES = [Line("TEA-SENCHA", 2, Decimal("6.20")), Line("MUG-01", 1, Decimal("12.50"))]
TOTAL = Decimal("24.90")

OrderCommand = Callable[[Orders, UUID], None]

COMMANDS: dict[str, OrderCommand] = {
    "confirm": lambda orders, order_id: orders.confirm(order_id),
    "reject": lambda orders, order_id: orders.reject(order_id, ["MUG-01"], "short"),
    "pay": lambda orders, order_id: orders.pay(order_id),
    "ship": lambda orders, order_id: orders.ship(order_id),
    "cancel": lambda orders, order_id: orders.cancel(order_id, "changed my mind"),
}

# The commands that lead from a placed order to each status.
PATHS: dict[str, list[str]] = {
    "placed": [],
    "confirmed": ["confirm"],
    "rejected": ["reject"],
    "paid": ["confirm", "pay"],
    "shipped": ["confirm", "pay", "ship"],
    "cancelled": ["confirm", "cancel"],
}

ALLOWED: dict[str, set[str]] = {
    "placed": {"confirm", "reject"},
    "confirmed": {"pay", "cancel"},
    "paid": {"ship", "cancel"},
    "rejected": set(),
    "shipped": set(),
    "cancelled": set(),
}


def placed(orders: Orders, status: str = "placed") -> UUID:
    """Given an order that reached this status."""
    order_id = orders.place_order(uuid4(), "customer-42", LINES, TOTAL)
    for command in PATHS[status]:
        COMMANDS[command](orders, order_id)
    assert orders.get_order(order_id).status == status
    return order_id


def stored_event_types(orders: Orders, order_id: UUID) -> list[str]:
    return [type(e).__qualname__ for e in orders.events.get(order_id)]


def test_place_order_stores_an_order_with_the_id_derived_from_the_cart(
    orders: Orders,
) -> None:
    cart_id = uuid4()

    order_id = orders.place_order(cart_id, " customer-42 ", LINES, TOTAL)

    assert order_id == order_id_for_cart(cart_id)
    order = orders.get_order(order_id)
    assert order.order_id == order_id
    assert order.cart_id == cart_id
    assert order.customer_id == "customer-42"
    assert order.status == "placed"
    assert order.lines == tuple(LINES)
    assert order.total == TOTAL
    assert order.short_skus == ()
    assert order.rejection_reason is None
    assert order.cancellation_reason is None
    assert order.placed_at == order.modified_at
    assert order.version == 1
    assert stored_event_types(orders, order_id) == ["Order.Placed"]


def test_placing_the_same_carts_order_again_changes_nothing(orders: Orders) -> None:
    cart_id = uuid4()
    first = orders.place_order(cart_id, "customer-42", LINES, TOTAL)
    head = orders.log_head()

    second = orders.place_order(cart_id, "customer-42", LINES, TOTAL)

    assert second == first
    assert orders.log_head() == head
    assert stored_event_types(orders, first) == ["Order.Placed"]


def test_placing_again_after_the_order_moved_on_changes_nothing(
    orders: Orders,
) -> None:
    cart_id = uuid4()
    order_id = orders.place_order(cart_id, "customer-42", LINES, TOTAL)
    orders.confirm(order_id)
    head = orders.log_head()

    again = orders.place_order(cart_id, "customer-42", LINES, TOTAL)

    assert again == order_id
    assert orders.log_head() == head
    assert orders.get_order(order_id).status == "confirmed"


def test_confirm_pay_ship(orders: Orders) -> None:
    order_id = placed(orders)

    orders.confirm(order_id)
    orders.pay(order_id)
    orders.ship(order_id)

    order = orders.get_order(order_id)
    assert order.status == "shipped"
    assert order.version == 4
    assert stored_event_types(orders, order_id) == [
        "Order.Placed",
        "Order.Confirmed",
        "Order.Paid",
        "Order.Shipped",
    ]
    [paid] = [e for e in orders.events.get(order_id) if isinstance(e, Order.Paid)]
    assert paid.amount == TOTAL


def test_reject_records_the_short_skus_and_the_reason(orders: Orders) -> None:
    order_id = placed(orders)

    orders.reject(order_id, ["MUG-01", "TEA-SENCHA", "MUG-01"], "  out of stock ")

    order = orders.get_order(order_id)
    assert order.status == "rejected"
    assert order.short_skus == ("MUG-01", "TEA-SENCHA")
    assert order.rejection_reason == "out of stock"


@pytest.mark.parametrize("status", ["confirmed", "paid"])
def test_cancel_records_the_reason(orders: Orders, status: str) -> None:
    order_id = placed(orders, status)

    orders.cancel(order_id, "customer called")

    order = orders.get_order(order_id)
    assert order.status == "cancelled"
    assert order.cancellation_reason == "customer called"


@pytest.mark.parametrize("status", list(PATHS))
def test_refused_transitions_raise_order_state_error_and_write_nothing(
    orders: Orders, status: str
) -> None:
    order_id = placed(orders, status)
    refused_commands = sorted(set(COMMANDS) - ALLOWED[status])
    head = orders.log_head()
    version = orders.get_order(order_id).version

    for command in refused_commands:
        with pytest.raises(OrderStateError) as refused:
            COMMANDS[command](orders, order_id)
        assert type(refused.value) is OrderStateError
        assert refused.value.order_id == order_id
        assert (refused.value.status, refused.value.command) == (status, command)

    assert orders.log_head() == head
    assert orders.get_order(order_id).version == version
    assert orders.get_order(order_id).status == status


@pytest.mark.parametrize("status", [s for s in PATHS if ALLOWED[s]])
def test_allowed_transitions_are_accepted(orders: Orders, status: str) -> None:
    for command in sorted(ALLOWED[status]):
        order_id = placed(orders, status)
        head = orders.log_head()

        COMMANDS[command](orders, order_id)

        assert orders.log_head() == head + 1
        assert orders.get_order(order_id).version == len(PATHS[status]) + 2


@pytest.mark.parametrize("command", list(COMMANDS))
def test_commands_on_an_unknown_order_raise_order_not_found(
    orders: Orders, command: str
) -> None:
    unknown = uuid4()
    head = orders.log_head()

    with pytest.raises(OrderNotFoundError) as refused:
        COMMANDS[command](orders, unknown)

    assert refused.value.order_id == unknown
    assert orders.log_head() == head


def test_get_order_of_an_unknown_order_raises_order_not_found(
    orders: Orders,
) -> None:
    with pytest.raises(OrderNotFoundError):
        orders.get_order(uuid4())


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda shop, order_id: shop.pay_order(order_id), id="pay"),
        pytest.param(lambda shop, order_id: shop.ship_order(order_id), id="ship"),
        pytest.param(lambda shop, order_id: shop.cancel_order(order_id), id="cancel"),
        pytest.param(lambda shop, order_id: shop.get_order(order_id), id="get"),
    ],
)
def test_shop_order_methods_on_an_unknown_order_raise_order_not_found(
    shop: Shop, call: Callable[[Shop, str], object]
) -> None:
    unknown = uuid4()
    before = shop.log_heads()

    with pytest.raises(OrderNotFoundError) as refused:
        call(shop, str(unknown))

    assert refused.value.order_id == unknown
    assert shop.log_heads() == before
