"""End to end, on SQLite and on PostgreSQL: after commands and
``wait_until_processed()``, every view says what the aggregates say."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from application import Settings, Shop
from application.services.aggregate_views import OrderView
from domain.order import OrderStatus
from domain.values import MAX_PRICE, MAX_QUANTITY
from projections.read_models.customer_orders import CustomerOrder
from projections.read_models.sales import ProductSalesRow
from tests.projections.projection_testing import MUG, POT, TEA

SKUS = (TEA, MUG, POT)


@pytest.fixture
def shop(settings: Settings) -> Iterator[Shop]:
    with Shop(settings=settings) as opened:
        yield opened


def place_order_of(shop: Shop, cart_id: UUID) -> UUID:
    """Checks a cart out and lets the checkout saga place the order and confirm
    or reject it."""
    order_id = shop.checkout(cart_id)
    shop.wait_until_processed()
    return order_id


@dataclass(frozen=True)
class Scenario:
    carts: tuple[UUID, ...]
    orders: tuple[UUID, ...]
    unshipped_paid: UUID


def run_scenario(shop: Shop) -> Scenario:
    """Something of every kind: orders shipped, cancelled, rejected and paid;
    carts checked out, abandoned and open; stock received, adjusted, reserved,
    released and committed."""
    shop.register_product(TEA, "Sencha green tea, 100 g", "6.20")
    shop.register_product(MUG, "Stoneware mug", "12.50")
    shop.register_product(POT, "Cast-iron teapot", "48.00")
    shop.receive_stock(TEA, 50)
    shop.receive_stock(MUG, 10)
    shop.receive_stock(POT, 2)
    shop.adjust_stock(TEA, 45, "stock count: 5 damaged")

    shipped = shop.open_cart("customer-1")
    shop.add_to_cart(shipped, TEA, 2)
    shop.add_to_cart(shipped, MUG, 1)
    shop.add_to_cart(shipped, TEA, 1)
    shop.change_quantity(shipped, MUG, 2)
    cancelled = shop.open_cart("customer-2")
    shop.add_to_cart(cancelled, POT, 1)
    shop.add_to_cart(cancelled, MUG, 1)
    rejected = shop.open_cart("customer-1")
    shop.add_to_cart(rejected, POT, 3)
    paid = shop.open_cart("customer-2")
    shop.add_to_cart(paid, TEA, 1)
    shop.add_to_cart(paid, MUG, 1)
    abandoned = shop.open_cart("customer-3")
    shop.add_to_cart(abandoned, TEA, 1)
    shop.remove_from_cart(abandoned, TEA)
    shop.add_to_cart(abandoned, MUG, 1)
    shop.abandon_cart(abandoned)
    still_open = shop.open_cart("customer-3")
    shop.add_to_cart(still_open, TEA, 4)

    orders = []
    for cart_id in (shipped, cancelled, rejected, paid):
        orders.append(place_order_of(shop, cart_id))
    shipped_order, cancelled_order, _, paid_order = orders
    shop.pay_order(shipped_order)
    shop.ship_order(shipped_order)
    shop.cancel_order(cancelled_order, "changed mind")
    shop.pay_order(paid_order)
    return Scenario(
        carts=(shipped, cancelled, rejected, paid, abandoned, still_open),
        orders=tuple(orders),
        unshipped_paid=paid_order,
    )


def assert_views_match_aggregates(shop: Shop, scenario: Scenario) -> None:
    queries = shop.queries

    for sku in SKUS:
        stock, level = shop.get_stock(sku), queries.stock_level(sku)
        assert level is not None
        assert (
            level.sku,
            level.name,
            level.price,
            level.on_hand,
            level.reserved,
            level.available,
        ) == (
            stock.sku,
            stock.name,
            stock.price,
            stock.on_hand,
            stock.reserved,
            stock.available,
        )
    assert tuple(level.sku for level in queries.stock_levels()) == tuple(sorted(SKUS))

    for cart_id in scenario.carts:
        cart, cart_summary = shop.get_cart(cart_id), queries.cart(cart_id)
        assert cart_summary is not None
        assert (
            cart_summary.customer_id,
            cart_summary.status,
            cart_summary.lines,
            cart_summary.total,
            cart_summary.order_id,
            cart_summary.updated_at,
        ) == (
            cart.customer_id,
            cart.status,
            cart.lines,
            cart.total,
            cart.order_id,
            cart.modified_at,
        )
        assert cart_summary.item_count == sum(line.quantity for line in cart.lines)

    orders = [shop.get_order(order_id) for order_id in scenario.orders]
    for order in orders:
        summary = queries.order(order.order_id)
        assert summary is not None
        assert (
            summary.cart_id,
            summary.customer_id,
            summary.status,
            summary.lines,
            summary.total,
            summary.short_skus,
            summary.rejection_reason,
            summary.cancellation_reason,
            summary.placed_at,
            summary.updated_at,
        ) == (
            order.cart_id,
            order.customer_id,
            order.status,
            order.lines,
            order.total,
            order.short_skus,
            order.rejection_reason,
            order.cancellation_reason,
            order.placed_at,
            order.modified_at,
        )
        assert summary.placed_at.utcoffset() == timedelta(0)

    listed = newest_first(orders)
    assert [s.order_id for s in queries.orders()] == [o.order_id for o in listed]
    for status in OrderStatus:
        assert [s.order_id for s in queries.orders(status=status.value)] == [
            order.order_id for order in listed if order.status == status
        ]

    for customer_id in {order.customer_id for order in orders}:
        history = queries.customer_history(customer_id)
        mine = [order for order in listed if order.customer_id == customer_id]
        assert history.orders == tuple(
            CustomerOrder(
                order.order_id,
                order.status,
                order.total,
                order.placed_at,
                order.modified_at,
            )
            for order in mine
        )
        sent = [order for order in mine if order.status == OrderStatus.SHIPPED]
        assert (
            history.orders_placed,
            history.orders_shipped,
            history.amount_spent,
        ) == (len(mine), len(sent), sum((o.total for o in sent), Decimal("0.00")))

    assert queries.product_sales() == expected_sales(orders)


def newest_first(orders: list[OrderView]) -> list[OrderView]:
    by_id = sorted(orders, key=lambda order: order.order_id)
    return sorted(by_id, key=lambda order: order.placed_at, reverse=True)


def expected_sales(orders: list[OrderView]) -> tuple[ProductSalesRow, ...]:
    units: Counter[str] = Counter()
    revenue: dict[str, Decimal] = {}
    shipments: Counter[str] = Counter()
    last: dict[str, datetime] = {}
    for order in sorted(orders, key=lambda order: order.modified_at):
        if order.status != OrderStatus.SHIPPED:
            continue
        for line in order.lines:
            units[line.sku] += line.quantity
            revenue[line.sku] = revenue.get(line.sku, Decimal(0)) + line.subtotal
            shipments[line.sku] += 1
            last[line.sku] = order.modified_at
    rows = [
        ProductSalesRow(sku, units[sku], revenue[sku], shipments[sku], last[sku])
        for sku in units
    ]
    return tuple(sorted(rows, key=lambda row: (-row.revenue, row.sku)))


def test_views_say_what_the_aggregates_say(shop: Shop) -> None:
    scenario = run_scenario(shop)

    shop.wait_until_processed()

    assert_views_match_aggregates(shop, scenario)
    assert [shop.get_order(order).status for order in scenario.orders] == [
        "shipped",
        "cancelled",
        "rejected",
        "paid",
    ]


def test_views_follow_later_commands(shop: Shop) -> None:
    scenario = run_scenario(shop)
    shop.wait_until_processed()

    shop.ship_order(scenario.unshipped_paid)
    shop.receive_stock(POT, 5)
    shop.wait_until_processed()

    assert_views_match_aggregates(shop, scenario)
    assert {row.sku for row in shop.queries.product_sales()} == {TEA, MUG}


def test_the_largest_valid_amounts_fit_the_views(shop: Shop) -> None:
    # A line of a million units at a million each: 10**12, past Numeric(12, 2).
    shop.register_product(POT, "Gold-plated teapot", MAX_PRICE)
    shop.receive_stock(POT, MAX_QUANTITY)
    cart_id = shop.open_cart("customer-1")
    shop.add_to_cart(cart_id, POT, MAX_QUANTITY)
    order_id = place_order_of(shop, cart_id)
    assert shop.get_order(order_id).status == "confirmed"
    shop.pay_order(order_id)
    shop.ship_order(order_id)

    shop.wait_until_processed()

    expected = MAX_PRICE * MAX_QUANTITY
    summary = shop.queries.cart(cart_id)
    assert summary is not None
    assert summary.total == expected
    assert shop.queries.customer_history("customer-1").amount_spent == expected
    [sales] = shop.queries.product_sales()
    assert (sales.units_sold, sales.revenue) == (MAX_QUANTITY, expected)
