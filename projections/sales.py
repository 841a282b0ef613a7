"""Units sold and revenue per SKU, counting shipped orders only."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
    case,
    delete,
    insert,
    literal,
    select,
    update,
)

from domain.order import Order
from projections.base import Projection, handles, new_metadata


class ProductSales(Projection):
    """``Order.Shipped`` does not repeat the order's lines, so each placed order's
    lines wait in ``sales_pending_lines`` until it ships, is rejected or is
    cancelled."""

    name = "sales"
    follows = "Orders"
    metadata = new_metadata()

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
    def placed(self, connection: Connection, event: Order.Placed) -> None:
        connection.execute(
            insert(self.table("sales_pending_lines")),
            [
                {
                    "order_id": event.originator_id,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                }
                for line in event.lines
            ],
        )

    @handles(Order.Shipped)
    def shipped(self, connection: Connection, event: Order.Shipped) -> None:
        pending = self.table("sales_pending_lines")
        sales = self.table("product_sales")
        lines = connection.execute(
            select(pending.c.sku, pending.c.quantity, pending.c.unit_price)
            .where(pending.c.order_id == event.originator_id)
            .order_by(pending.c.sku)
        ).all()
        shipped_at = literal(event.timestamp, DateTime(timezone=True))
        # Timestamps of concurrent commands may reach the log out of order.
        latest = case(
            (sales.c.last_shipped_at < shipped_at, shipped_at),
            else_=sales.c.last_shipped_at,
        )
        for line in lines:
            revenue = line.quantity * line.unit_price
            sold = connection.execute(
                select(
                    sales.c.units_sold, sales.c.revenue, sales.c.orders_shipped
                ).where(sales.c.sku == line.sku)
            ).one_or_none()
            if sold is None:
                connection.execute(
                    insert(sales).values(
                        sku=line.sku,
                        units_sold=line.quantity,
                        revenue=revenue,
                        orders_shipped=1,
                        last_shipped_at=event.timestamp,
                    )
                )
            else:
                # Added up here in Decimal: SQLite would add floats.
                connection.execute(
                    update(sales)
                    .where(sales.c.sku == line.sku)
                    .values(
                        units_sold=sold.units_sold + line.quantity,
                        revenue=sold.revenue + revenue,
                        orders_shipped=sold.orders_shipped + 1,
                        last_shipped_at=latest,
                    )
                )
        self._forget(connection, event.originator_id)

    @handles(Order.Rejected)
    def rejected(self, connection: Connection, event: Order.Rejected) -> None:
        self._forget(connection, event.originator_id)

    @handles(Order.Cancelled)
    def cancelled(self, connection: Connection, event: Order.Cancelled) -> None:
        self._forget(connection, event.originator_id)

    def _forget(self, connection: Connection, order_id: UUID) -> None:
        pending = self.table("sales_pending_lines")
        connection.execute(delete(pending).where(pending.c.order_id == order_id))
