"""Product sales, fed with the events Orders record: shipped orders only."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from domain.order import Order
from projections.read_models.sales import ProductSales, ProductSalesRow, product_sales
from projections.store import ViewStore
from tests.projections.projection_testing import (
    MUG,
    POT,
    TEA,
    Feeder,
    events_of,
    new_view_store,
    placed_order,
    rows,
    shipped,
)


@pytest.fixture
def store(tmp_path: Path) -> ViewStore:
    return new_view_store(tmp_path / "v.sqlite3", ProductSales)


@pytest.fixture
def feed(store: ViewStore) -> Feeder:
    return Feeder(store, ProductSales)


def test_a_placed_order_sells_nothing_yet(store: ViewStore, feed: Feeder) -> None:
    order = placed_order("customer-1", (TEA, 2, "6.20"), (MUG, 1, "12.50"))
    order.confirm()
    order.pay()

    feed(events_of(order))

    assert product_sales(store) == ()
    pending = rows(store, ProductSales, "sales_pending_lines")
    assert {(row["sku"], row["quantity"]) for row in pending} == {(TEA, 2), (MUG, 1)}


def test_a_shipped_order_sells_its_lines(store: ViewStore, feed: Feeder) -> None:
    order = placed_order("customer-1", (TEA, 2, "6.20"), (MUG, 1, "12.50"))
    feed(events_of(order))

    shipped(order)
    feed(events_of(order))

    assert order.shipped_at is not None
    assert product_sales(store) == (
        ProductSalesRow(MUG, 1, Decimal("12.50"), 1, order.shipped_at),
        ProductSalesRow(TEA, 2, Decimal("12.40"), 1, order.shipped_at),
    )
    assert rows(store, ProductSales, "sales_pending_lines") == []


@pytest.mark.parametrize("how", ["rejected", "cancelled"])
def test_an_order_that_never_ships_sells_nothing_and_is_forgotten(
    store: ViewStore, feed: Feeder, how: str
) -> None:
    order = placed_order("customer-1", (TEA, 2, "6.20"))
    if how == "rejected":
        order.reject([TEA], "not enough stock")
    else:
        order.confirm()
        order.cancel("changed mind")

    feed(events_of(order))

    assert product_sales(store) == ()
    assert rows(store, ProductSales, "sales_pending_lines") == []


def test_sales_add_up_across_orders_highest_revenue_first(
    store: ViewStore, feed: Feeder
) -> None:
    orders = [
        shipped(placed_order("customer-1", (TEA, 2, "6.20"), (POT, 1, "48.00"))),
        shipped(placed_order("customer-2", (TEA, 5, "5.90"))),
        shipped(placed_order("customer-3", (MUG, 1, "12.50"))),
    ]

    feed(events_of(*orders))

    assert [
        (row.sku, row.units_sold, row.revenue, row.orders_shipped)
        for row in product_sales(store)
    ] == [
        (POT, 1, Decimal("48.00"), 1),
        (TEA, 7, Decimal("41.90"), 2),
        (MUG, 1, Decimal("12.50"), 1),
    ]
    tea = next(row for row in product_sales(store) if row.sku == TEA)
    assert tea.last_shipped_at == orders[1].shipped_at


def test_last_shipped_at_is_the_latest_even_if_logged_out_of_order(
    store: ViewStore, feed: Feeder
) -> None:
    earlier = shipped(placed_order("customer-1", (TEA, 1, "6.20")))
    later = shipped(placed_order("customer-2", (TEA, 1, "6.20")))
    earlier_events, later_events = events_of(earlier), events_of(later)

    # Concurrent ship commands: the later timestamp is stored first.
    feed([*earlier_events[:-1], *later_events, earlier_events[-1]])

    [tea] = product_sales(store)
    assert tea.last_shipped_at == later.shipped_at
    assert tea.orders_shipped == 2


def test_revenue_adds_up_exactly_in_cents(store: ViewStore, feed: Feeder) -> None:
    orders: list[Order] = [
        shipped(placed_order(f"customer-{n}", (TEA, 1, "0.10"))) for n in range(30)
    ]

    for order in orders:
        feed(events_of(order))

    [tea] = product_sales(store)
    assert tea.revenue == Decimal("3.00")
    assert tea.units_sold == 30
