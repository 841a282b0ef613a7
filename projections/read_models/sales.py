"""Units sold and revenue per SKU, counting shipped orders only; the tables,
their handlers, and reading them (``product_sales``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
    select,
)

from domain.order import Order
from projections.batching.changes import Changes
from projections.read_model import ReadModel, handles, new_metadata
from projections.read_models.rows import row_as
from projections.store import ViewStore

NOTHING_SOLD = {"units_sold": 0, "revenue": Decimal("0.00"), "orders_shipped": 0}
"""A SKU's sales before its first shipped order."""


class ProductSales(ReadModel):
    """``Order.Shipped`` does not repeat the order's lines, so each placed order's
    lines wait in ``sales_pending_lines`` until it ships, is rejected or is
    cancelled."""

    name = "sales"
    follows = "Orders"
    metadata = new_metadata()
    loads = {"sales_pending_lines": "order_id"}

    Table(
        "sales_pending_lines",
        metadata,
        Column("order_id", Uuid, nullable=False),
        Column("sku", String(64), nullable=False),
        Column("quantity", Integer, nullable=False),
        Column("unit_price", Numeric(12, 2), nullable=False),
        PrimaryKeyConstraint("order_id", "sku"),
    )
    Table(
        "product_sales",
        metadata,
        Column("sku", String(64), primary_key=True),
        # Sums of quantities outgrow an Integer after ~2,000 full lines.
        Column("units_sold", BigInteger, nullable=False),
        Column("revenue", Numeric(18, 2), nullable=False),
        Column("orders_shipped", Integer, nullable=False),
        Column("last_shipped_at", DateTime(timezone=True), nullable=False),
    )

    @handles(Order.Placed)
    def placed(self, changes: Changes, event: Order.Placed) -> None:
        pending = changes["sales_pending_lines"]
        for line in event.lines:
            pending.insert(
                order_id=event.originator_id,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
            )

    @handles(Order.Shipped)
    def shipped(self, changes: Changes, event: Order.Shipped) -> None:
        sales = changes["product_sales"]
        for line in changes["sales_pending_lines"].where(order_id=event.originator_id):
            sales.add(
                line["sku"],
                units_sold=line["quantity"],
                revenue=line["quantity"] * line["unit_price"],
                orders_shipped=1,
                default=NOTHING_SOLD | {"last_shipped_at": event.timestamp},
            )
            # Timestamps of concurrent commands may reach the log out of order.
            sales.keep_latest(line["sku"], last_shipped_at=event.timestamp)
        self._forget(changes, event)

    @handles(Order.Rejected)
    def rejected(self, changes: Changes, event: Order.Rejected) -> None:
        self._forget(changes, event)

    @handles(Order.Cancelled)
    def cancelled(self, changes: Changes, event: Order.Cancelled) -> None:
        self._forget(changes, event)

    @staticmethod
    def _forget(changes: Changes, event: Order.Event) -> None:
        pending = changes["sales_pending_lines"]
        for line in pending.where(order_id=event.originator_id):
            pending.delete(line)


@dataclass(frozen=True)
class ProductSalesRow:
    """What the shipped orders hold of one SKU."""

    sku: str
    units_sold: int
    revenue: Decimal
    orders_shipped: int
    last_shipped_at: datetime


def product_sales(store: ViewStore) -> tuple[ProductSalesRow, ...]:
    """Every SKU that has shipped, highest revenue first (then by SKU)."""
    with store.registry.reading(ProductSales) as view:
        sales = view.table("product_sales")
        rows = view.connection.execute(
            select(sales).order_by(sales.c.revenue.desc(), sales.c.sku)
        ).all()
    return tuple(row_as(ProductSalesRow, row) for row in rows)
