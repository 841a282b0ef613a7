"""``ShopQueries``: what callers may pass, and what they get for ids never seen."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest

from application.shop_queries import ShopQueries
from domain.errors import (
    InvalidIdError,
    InvalidInputError,
    InvalidSkuError,
    InvalidTextError,
)
from domain.order import Order
from projections.read_models.catalog import READ_MODELS
from projections.read_models.customer_orders import (
    CustomerHistory,
    CustomerOrderHistory,
)
from projections.read_models.orders import OrderSummaries
from tests.projections.projection_testing import (
    TEA,
    Feeder,
    events_of,
    new_view_store,
    placed_order,
)


@pytest.fixture
def queries(tmp_path: Path) -> ShopQueries:
    return ShopQueries(new_view_store(tmp_path / "v.sqlite3", *READ_MODELS))


@pytest.fixture
def order(queries: ShopQueries) -> Order:
    order = placed_order("customer-1", (TEA, 2, "6.20"))
    events = events_of(order)
    for projection in (OrderSummaries, CustomerOrderHistory):
        Feeder(queries.store, projection)(events)
    return order


@pytest.mark.parametrize(
    "form",
    [lambda id_: id_, str, lambda id_: str(id_).upper()],
    ids=["uuid", "str", "upper-str"],
)
def test_an_order_is_found_by_its_id_in_any_form(
    queries: ShopQueries, order: Order, form: object
) -> None:
    assert callable(form)
    found = queries.order(form(order.id))
    assert found is not None
    assert found.order_id == order.id


def test_order_statuses_reads_many_orders_at_once_leaving_out_unknown_ones(
    queries: ShopQueries, order: Order
) -> None:
    unknown = uuid4()
    assert queries.order_statuses([str(order.id), order.id, unknown]) == {
        order.id: "placed"
    }
    assert queries.order_statuses([]) == {}


def test_ids_and_skus_nothing_was_seen_for_give_none(queries: ShopQueries) -> None:
    assert queries.cart(uuid4()) is None
    assert queries.order(str(uuid4())) is None
    assert queries.stock_level("NO-SUCH-SKU") is None
    assert queries.customer_history(" nobody ") == CustomerHistory(
        "nobody", (), 0, 0, Decimal("0.00")
    )


def test_empty_views_list_nothing(queries: ShopQueries) -> None:
    assert queries.orders() == ()
    assert queries.stock_levels() == ()
    assert queries.product_sales() == ()


def test_customer_ids_are_read_as_they_are_stored(
    queries: ShopQueries, order: Order
) -> None:
    assert [o.order_id for o in queries.orders(customer_id="  customer-1 ")] == [
        order.id
    ]
    assert queries.customer_history("customer-1 ").orders_placed == 1


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda q: q.cart("not-a-uuid"), InvalidIdError),
        (lambda q: q.order(42), InvalidIdError),
        (lambda q: q.order_statuses(["not-a-uuid"]), InvalidIdError),
        (lambda q: q.order_statuses(uuid4() for _ in range(501)), InvalidInputError),
        (lambda q: q.stock_level("lower-case"), InvalidSkuError),
        (lambda q: q.stock_level(""), InvalidSkuError),
        (lambda q: q.customer_history("   "), InvalidTextError),
        (lambda q: q.orders(customer_id=""), InvalidTextError),
        (lambda q: q.orders(status="lost"), InvalidInputError),
        (lambda q: q.orders(status="PLACED"), InvalidInputError),
        (lambda q: q.orders(limit=0), InvalidInputError),
        (lambda q: q.orders(limit=501), InvalidInputError),
        (lambda q: q.orders(limit=True), InvalidInputError),
        (lambda q: q.orders(limit="10"), InvalidInputError),
        (lambda q: q.orders(offset=-1), InvalidInputError),
        (lambda q: q.orders(offset=2**63), InvalidInputError),
        (lambda q: q.orders(offset=1.0), InvalidInputError),
        (lambda q: q.orders(limit=2**63), InvalidInputError),
        (lambda q: q.orders(customer_id="a\x00b"), InvalidTextError),
        (lambda q: q.orders(customer_id="a\nb"), InvalidTextError),
        (lambda q: q.orders(customer_id="a\ud800"), InvalidTextError),
        (lambda q: q.orders(customer_id="x" * 10_000_000), InvalidTextError),
        (lambda q: q.customer_history("one\x00"), InvalidTextError),
        (lambda q: q.customer_history("\x85one\x9f"), InvalidTextError),
    ],
)
def test_malformed_input_is_refused_with_a_typed_error(
    queries: ShopQueries, call: object, error: type[InvalidInputError]
) -> None:
    assert callable(call)
    with pytest.raises(error):
        call(queries)


def test_every_status_is_a_valid_filter(queries: ShopQueries, order: Order) -> None:
    found = {
        status: len(queries.orders(status=status))
        for status in (
            "placed",
            "confirmed",
            "rejected",
            "paid",
            "shipped",
            "cancelled",
        )
    }
    assert found == {
        "placed": 1,
        "confirmed": 0,
        "rejected": 0,
        "paid": 0,
        "shipped": 0,
        "cancelled": 0,
    }
