"""Each customer's orders and what the customer has placed, received and spent;
the tables, their handlers, and reading them (``customer_history``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
    select,
)

from domain.order import Order, OrderStatus
from projections.batching.changes import Changes
from projections.batching.rows import RowView
from projections.read_model import ReadModel, handles, new_metadata
from projections.read_models.rows import row_as
from projections.store import ViewStore

NOTHING_YET = {"orders_placed": 0, "orders_shipped": 0, "amount_spent": Decimal("0.00")}
"""A customer's totals before their first order."""


class CustomerOrderHistory(ReadModel):
    """Only ``Order.Placed`` names the customer; later events are matched to
    their customer through this projection's own ``customer_orders`` rows."""

    name = "customer_orders"
    follows = "Orders"
    metadata = new_metadata()
    loads = {"customer_orders": "order_id"}

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
    def placed(self, changes: Changes, event: Order.Placed) -> None:
        changes["customer_orders"].insert(
            customer_id=event.customer_id,
            order_id=event.originator_id,
            status=OrderStatus.PLACED.value,
            total=event.total,
            placed_at=event.timestamp,
            updated_at=event.timestamp,
        )
        changes["customer_totals"].add(
            event.customer_id, orders_placed=1, default=NOTHING_YET
        )

    @handles(Order.Confirmed)
    def confirmed(self, changes: Changes, event: Order.Confirmed) -> None:
        self._step(changes, event, OrderStatus.CONFIRMED)

    @handles(Order.Rejected)
    def rejected(self, changes: Changes, event: Order.Rejected) -> None:
        self._step(changes, event, OrderStatus.REJECTED)

    @handles(Order.Paid)
    def paid(self, changes: Changes, event: Order.Paid) -> None:
        self._step(changes, event, OrderStatus.PAID)

    @handles(Order.Shipped)
    def shipped(self, changes: Changes, event: Order.Shipped) -> None:
        [order] = self._step(changes, event, OrderStatus.SHIPPED)
        changes["customer_totals"].add(
            order["customer_id"], orders_shipped=1, amount_spent=order["total"]
        )

    @handles(Order.Cancelled)
    def cancelled(self, changes: Changes, event: Order.Cancelled) -> None:
        self._step(changes, event, OrderStatus.CANCELLED)

    @staticmethod
    def _step(
        changes: Changes, event: Order.Event, status: OrderStatus
    ) -> list[RowView]:
        """Moves the order's row (if any) to ``status``; returns it."""
        orders = changes["customer_orders"]
        found = orders.where(order_id=event.originator_id)
        for order in found:
            orders.update(order, status=status.value, updated_at=event.timestamp)
        return found


@dataclass(frozen=True)
class CustomerOrder:
    order_id: UUID
    status: str
    total: Decimal
    placed_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CustomerHistory:
    customer_id: str
    orders: tuple[CustomerOrder, ...]
    """Newest first."""
    orders_placed: int
    orders_shipped: int
    amount_spent: Decimal
    """The sum of the totals of the shipped orders."""


def customer_history(store: ViewStore, customer_id: str) -> CustomerHistory:
    """A customer's orders, newest first, and totals (all zero if none seen)."""
    with store.registry.reading(CustomerOrderHistory) as view:
        orders_table = view.table("customer_orders")
        totals = view.table("customer_totals")
        connection = view.connection
        rows = connection.execute(
            select(orders_table)
            .where(orders_table.c.customer_id == customer_id)
            .order_by(orders_table.c.placed_at.desc(), orders_table.c.order_id)
        ).all()
        total = connection.execute(
            select(totals).where(totals.c.customer_id == customer_id)
        ).one_or_none()
    return CustomerHistory(
        customer_id=customer_id,
        orders=tuple(row_as(CustomerOrder, row) for row in rows),
        orders_placed=0 if total is None else total.orders_placed,
        orders_shipped=0 if total is None else total.orders_shipped,
        amount_spent=Decimal("0.00") if total is None else total.amount_spent,
    )
