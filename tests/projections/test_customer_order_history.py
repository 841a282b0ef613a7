"""Customer order history, fed with the events Orders record."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from projections.read_models.customer_orders import (
    CustomerHistory,
    CustomerOrder,
    CustomerOrderHistory,
    customer_history,
)
from projections.store import ViewStore
from tests.projections.projection_testing import (
    MUG,
    TEA,
    Feeder,
    events_of,
    new_view_store,
    newest_first,
    placed_order,
    rows,
    shipped,
)


@pytest.fixture
def store(tmp_path: Path) -> ViewStore:
    # Only this projection's tables: it must not need another's.
    return new_view_store(tmp_path / "v.sqlite3", CustomerOrderHistory)


@pytest.fixture
def feed(store: ViewStore) -> Feeder:
    return Feeder(store, CustomerOrderHistory)


def test_a_customer_nobody_has_seen_has_an_empty_history(store: ViewStore) -> None:
    assert customer_history(store, "customer-9") == CustomerHistory(
        customer_id="customer-9",
        orders=(),
        orders_placed=0,
        orders_shipped=0,
        amount_spent=Decimal("0.00"),
    )


def test_placed_orders_are_listed_newest_first_and_counted(
    store: ViewStore, feed: Feeder
) -> None:
    first = placed_order("customer-1", (TEA, 2, "6.20"))
    second = placed_order("customer-1", (MUG, 1, "12.50"))
    someone_else = placed_order("customer-2", (TEA, 1, "6.20"))

    feed(events_of(first, second, someone_else))

    history = customer_history(store, "customer-1")
    assert history.orders == tuple(
        CustomerOrder(
            order_id=order.id,
            status="placed",
            total=order.total,
            placed_at=order.placed_at,
            updated_at=order.placed_at,
        )
        for order in newest_first([first, second])
    )
    assert (history.orders_placed, history.orders_shipped) == (2, 0)
    assert history.amount_spent == Decimal("0.00")
    assert customer_history(store, "customer-2").orders_placed == 1


def test_only_shipped_orders_count_as_spent(store: ViewStore, feed: Feeder) -> None:
    kept = shipped(placed_order("customer-1", (TEA, 2, "6.20")))
    also_kept = shipped(placed_order("customer-1", (MUG, 3, "12.50")))
    refused = placed_order("customer-1", (TEA, 100, "6.20"))
    refused.reject([TEA], "not enough stock")
    cancelled = placed_order("customer-1", (MUG, 1, "12.50"))
    cancelled.confirm()
    cancelled.cancel("changed mind")
    waiting = placed_order("customer-1", (MUG, 1, "12.50"))
    waiting.confirm()
    waiting.pay()

    feed(events_of(kept, also_kept, refused, cancelled, waiting))

    history = customer_history(store, "customer-1")
    assert (history.orders_placed, history.orders_shipped) == (5, 2)
    assert history.amount_spent == Decimal("12.40") + Decimal("37.50")
    statuses = {order.order_id: order.status for order in history.orders}
    assert statuses == {
        kept.id: "shipped",
        also_kept.id: "shipped",
        refused.id: "rejected",
        cancelled.id: "cancelled",
        waiting.id: "paid",
    }


def test_later_events_find_their_customer_in_batches_of_their_own(
    store: ViewStore, feed: Feeder
) -> None:
    order = placed_order("customer-1", (TEA, 2, "6.20"))
    feed(events_of(order))

    order.confirm()
    feed(events_of(order))
    order.pay()
    order.ship()
    feed(events_of(order))

    [row] = rows(store, CustomerOrderHistory, "customer_orders")
    assert (row["customer_id"], row["status"]) == ("customer-1", "shipped")
    [totals] = rows(store, CustomerOrderHistory, "customer_totals")
    assert totals == {
        "customer_id": "customer-1",
        "orders_placed": 1,
        "orders_shipped": 1,
        "amount_spent": Decimal("12.40"),
    }
    assert customer_history(store, "customer-1").orders[0].updated_at == (
        order.shipped_at
    )
