"""Order summaries, fed with the events an Order records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from domain.order import Order
from domain.values import Line
from projections.read_models.orders import (
    OrderSummaries,
    OrderSummary,
    order_summary,
    orders,
)
from projections.store import ViewStore
from tests.projections.projection_testing import (
    MUG,
    POT,
    TEA,
    Feeder,
    events_of,
    new_view_store,
    newest_first,
    placed_order,
    rows,
)


@pytest.fixture
def store(tmp_path: Path) -> ViewStore:
    return new_view_store(tmp_path / "v.sqlite3", OrderSummaries)


@pytest.fixture
def feed(store: ViewStore) -> Feeder:
    return Feeder(store, OrderSummaries)


def summary_of(store: ViewStore, order: Order) -> OrderSummary:
    summary = order_summary(store, order.id)
    assert summary is not None
    return summary


def test_a_placed_order_shows_its_lines_in_order(
    store: ViewStore, feed: Feeder
) -> None:
    order = placed_order("customer-1", (TEA, 2, "6.20"), (MUG, 1, "12.50"))

    feed(events_of(order))

    assert summary_of(store, order) == OrderSummary(
        order_id=order.id,
        cart_id=order.cart_id,
        customer_id="customer-1",
        status="placed",
        lines=(Line(TEA, 2, Decimal("6.20")), Line(MUG, 1, Decimal("12.50"))),
        total=Decimal("24.90"),
        short_skus=(),
        rejection_reason=None,
        cancellation_reason=None,
        placed_at=order.placed_at,
        confirmed_at=None,
        rejected_at=None,
        paid_at=None,
        shipped_at=None,
        cancelled_at=None,
        updated_at=order.placed_at,
    )
    [row] = rows(store, OrderSummaries, "order_summaries")
    assert (row["line_count"], row["short_skus"]) == (2, "")


def confirm(order: Order) -> None:
    order.confirm()


def pay(order: Order) -> None:
    order.confirm()
    order.pay()


def ship(order: Order) -> None:
    pay(order)
    order.ship()


def cancel(order: Order) -> None:
    pay(order)
    order.cancel("customer changed their mind")


@pytest.mark.parametrize(
    ("steps", "status"),
    [(confirm, "confirmed"), (pay, "paid"), (ship, "shipped"), (cancel, "cancelled")],
)
def test_each_step_sets_the_status_and_the_time_it_happened(
    store: ViewStore,
    feed: Feeder,
    steps: Callable[[Order], None],
    status: str,
) -> None:
    order = placed_order("customer-1", (TEA, 2, "6.20"))
    feed(events_of(order))

    steps(order)
    feed(events_of(order))

    summary = summary_of(store, order)
    assert summary.status == order.status == status
    assert (
        summary.confirmed_at,
        summary.paid_at,
        summary.shipped_at,
        summary.cancelled_at,
        summary.cancellation_reason,
    ) == (
        order.confirmed_at,
        order.paid_at,
        order.shipped_at,
        order.cancelled_at,
        order.cancellation_reason,
    )
    assert summary.updated_at == order.modified_on
    assert summary.lines == order.lines


def test_a_rejected_order_names_its_short_skus_sorted(
    store: ViewStore, feed: Feeder
) -> None:
    order = placed_order(
        "customer-1", (TEA, 2, "6.20"), (POT, 1, "48.00"), (MUG, 1, "12.50")
    )
    order.reject([TEA, MUG], "not enough stock")

    feed(events_of(order))

    summary = summary_of(store, order)
    assert summary.status == "rejected"
    assert summary.short_skus == (MUG, TEA) == order.short_skus
    assert summary.rejection_reason == "not enough stock"
    assert summary.rejected_at == order.rejected_at
    [row] = rows(store, OrderSummaries, "order_summaries")
    assert row["short_skus"] == f"{MUG},{TEA}"


def test_an_unknown_order_has_no_summary(store: ViewStore) -> None:
    assert order_summary(store, uuid4()) is None


# -- listing --------------------------------------------------------------------


@pytest.fixture
def six_orders(feed: Feeder) -> list[Order]:
    """Orders of two customers, in order placed; every other one confirmed."""
    placed = []
    for number in range(6):
        order = placed_order(f"customer-{number % 2}", (TEA, number + 1, "6.20"))
        if number % 2:
            order.confirm()
        placed.append(order)
    feed(events_of(*placed))
    return placed


def ids(found: tuple[OrderSummary, ...]) -> list[UUID]:
    return [summary.order_id for summary in found]


def test_orders_are_listed_newest_first(
    store: ViewStore, six_orders: list[Order]
) -> None:
    assert ids(orders(store)) == [order.id for order in newest_first(six_orders)]


def test_orders_are_filtered_by_status_and_by_customer(
    store: ViewStore, six_orders: list[Order]
) -> None:
    listed = newest_first(six_orders)

    assert ids(orders(store, status="confirmed")) == [
        order.id for order in listed if order.status == "confirmed"
    ]
    assert ids(orders(store, customer_id="customer-0")) == [
        order.id for order in listed if order.customer_id == "customer-0"
    ]
    assert ids(orders(store, status="confirmed", customer_id="customer-0")) == []
    assert orders(store, status="shipped") == ()


def test_orders_are_paged(store: ViewStore, six_orders: list[Order]) -> None:
    listed = [order.id for order in newest_first(six_orders)]

    pages = [ids(orders(store, limit=4, offset=offset)) for offset in (0, 4, 8)]

    assert pages == [listed[:4], listed[4:], []]


def test_listed_orders_carry_their_own_lines(
    store: ViewStore, six_orders: list[Order]
) -> None:
    for summary in orders(store):
        [line] = summary.lines
        order = next(order for order in six_orders if order.id == summary.order_id)
        assert (line,) == order.lines
        assert summary.line_count == 1


def test_filter_values_are_bound_not_spliced(
    store: ViewStore, six_orders: list[Order]
) -> None:
    assert orders(store, customer_id="x' OR '1'='1") == ()


def test_timestamps_read_back_as_utc(store: ViewStore, feed: Feeder) -> None:
    order = placed_order("customer-1", (TEA, 1, "6.20"))
    feed(events_of(order))

    summary = summary_of(store, order)

    assert summary.placed_at.utcoffset() == timedelta(0)
    assert summary.placed_at == order.placed_at
