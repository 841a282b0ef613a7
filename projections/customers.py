"""Each customer's orders and what the customer has placed, received and spent."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
    insert,
    select,
    update,
)

from domain.order import Order, OrderStatus
from projections.base import Projection, handles, new_metadata


class CustomerOrderHistory(Projection):
    """Only ``Order.Placed`` names the customer; later events are matched to
    their customer through this projection's own ``customer_orders`` rows."""

    name = "customer_orders"
    follows = "Orders"
    metadata = new_metadata()

    Table(
        "customer_orders",
        metadata,
        Column("customer_id", String(200), nullable=False),
        # Unique on its own too: later events name the order, not the customer.
        Column("order_id", Uuid, nullable=False, unique=True),
        Column("status", String(20), nullable=False),
        Column("total", Numeric(18, 2), nullable=False),
        Column("placed_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("customer_id", "order_id"),
        Index(None, "customer_id", "placed_at"),
    )
    Table(
        "customer_totals",
        metadata,
        Column("customer_id", String(200), primary_key=True),
        Column("orders_placed", Integer, nullable=False),
        Column("orders_shipped", Integer, nullable=False),
        # The sum of the totals of the customer's shipped orders.
        Column("amount_spent", Numeric(18, 2), nullable=False),
    )

    @handles(Order.Placed)
    def placed(self, connection: Connection, event: Order.Placed) -> None:
        connection.execute(
            insert(self.table("customer_orders")).values(
                customer_id=event.customer_id,
                order_id=event.originator_id,
                status=OrderStatus.PLACED.value,
                total=event.total,
                placed_at=event.timestamp,
                updated_at=event.timestamp,
            )
        )
        totals = self.table("customer_totals")
        placed = connection.execute(
            select(totals.c.orders_placed).where(
                totals.c.customer_id == event.customer_id
            )
        ).scalar_one_or_none()
        if placed is None:
            connection.execute(
                insert(totals).values(
                    customer_id=event.customer_id,
                    orders_placed=1,
                    orders_shipped=0,
                    amount_spent=Decimal("0.00"),
                )
            )
        else:
            connection.execute(
                update(totals)
                .where(totals.c.customer_id == event.customer_id)
                .values(orders_placed=placed + 1)
            )

    @handles(Order.Confirmed)
    def confirmed(self, connection: Connection, event: Order.Confirmed) -> None:
        self._step(connection, event, OrderStatus.CONFIRMED)

    @handles(Order.Rejected)
    def rejected(self, connection: Connection, event: Order.Rejected) -> None:
        self._step(connection, event, OrderStatus.REJECTED)

    @handles(Order.Paid)
    def paid(self, connection: Connection, event: Order.Paid) -> None:
        self._step(connection, event, OrderStatus.PAID)

    @handles(Order.Shipped)
    def shipped(self, connection: Connection, event: Order.Shipped) -> None:
        self._step(connection, event, OrderStatus.SHIPPED)
        orders = self.table("customer_orders")
        order = connection.execute(
            select(orders.c.customer_id, orders.c.total).where(
                orders.c.order_id == event.originator_id
            )
        ).one()
        totals = self.table("customer_totals")
        spent = connection.execute(
            select(totals.c.orders_shipped, totals.c.amount_spent).where(
                totals.c.customer_id == order.customer_id
            )
        ).one()
        # Added up here in Decimal: SQLite would add floats.
        connection.execute(
            update(totals)
            .where(totals.c.customer_id == order.customer_id)
            .values(
                orders_shipped=spent.orders_shipped + 1,
                amount_spent=spent.amount_spent + order.total,
            )
        )

    @handles(Order.Cancelled)
    def cancelled(self, connection: Connection, event: Order.Cancelled) -> None:
        self._step(connection, event, OrderStatus.CANCELLED)

    def _step(
        self, connection: Connection, event: Order.Event, status: OrderStatus
    ) -> None:
        orders = self.table("customer_orders")
        connection.execute(
            update(orders)
            .where(orders.c.order_id == event.originator_id)
            .values(status=status.value, updated_at=event.timestamp)
        )
