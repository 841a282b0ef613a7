"""Order summaries: each order's lines, status and the time of every step."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
)

from domain.order import Order, OrderStatus
from projections.batching.changes import Changes
from projections.read_model import ReadModel, handles, new_metadata

SKU_SEPARATOR = ","
"""Joins ``short_skus`` into one column; a SKU never holds a comma."""


class OrderSummaries(ReadModel):
    name = "orders"
    follows = "Orders"
    metadata = new_metadata()

    Table(
        "order_summaries",
        metadata,
        Column("order_id", Uuid, primary_key=True),
        Column("cart_id", Uuid, nullable=False),
        Column("customer_id", String(200), nullable=False, index=True),
        Column("status", String(20), nullable=False, index=True),
        # Wider than a price: one valid line reaches 10**12.
        Column("total", Numeric(18, 2), nullable=False),
        Column("line_count", Integer, nullable=False),
        Column("short_skus", Text, nullable=False),
        Column("rejection_reason", Text, nullable=True),
        Column("cancellation_reason", Text, nullable=True),
        Column("placed_at", DateTime(timezone=True), nullable=False),
        Column("confirmed_at", DateTime(timezone=True), nullable=True),
        Column("rejected_at", DateTime(timezone=True), nullable=True),
        Column("paid_at", DateTime(timezone=True), nullable=True),
        Column("shipped_at", DateTime(timezone=True), nullable=True),
        Column("cancelled_at", DateTime(timezone=True), nullable=True),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "order_lines",
        metadata,
        Column("order_id", Uuid, nullable=False),
        Column("sku", String(64), nullable=False),
        Column("quantity", Integer, nullable=False),
        Column("unit_price", Numeric(12, 2), nullable=False),
        # Lines are listed in the order the order was placed with.
        Column("position", Integer, nullable=False),
        PrimaryKeyConstraint("order_id", "sku"),
    )

    @handles(Order.Placed)
    def placed(self, changes: Changes, event: Order.Placed) -> None:
        changes["order_summaries"].insert(
            order_id=event.originator_id,
            cart_id=event.cart_id,
            customer_id=event.customer_id,
            status=OrderStatus.PLACED.value,
            total=event.total,
            line_count=len(event.lines),
            short_skus="",
            placed_at=event.timestamp,
            updated_at=event.timestamp,
        )
        lines = changes["order_lines"]
        for position, line in enumerate(event.lines, start=1):
            lines.insert(
                order_id=event.originator_id,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                position=position,
            )

    @handles(Order.Confirmed)
    def confirmed(self, changes: Changes, event: Order.Confirmed) -> None:
        self._step(changes, event, OrderStatus.CONFIRMED, confirmed_at=event.timestamp)

    @handles(Order.Rejected)
    def rejected(self, changes: Changes, event: Order.Rejected) -> None:
        self._step(
            changes,
            event,
            OrderStatus.REJECTED,
            short_skus=SKU_SEPARATOR.join(sorted(event.short_skus)),
            rejection_reason=event.reason,
            rejected_at=event.timestamp,
        )

    @handles(Order.Paid)
    def paid(self, changes: Changes, event: Order.Paid) -> None:
        self._step(changes, event, OrderStatus.PAID, paid_at=event.timestamp)

    @handles(Order.Shipped)
    def shipped(self, changes: Changes, event: Order.Shipped) -> None:
        self._step(changes, event, OrderStatus.SHIPPED, shipped_at=event.timestamp)

    @handles(Order.Cancelled)
    def cancelled(self, changes: Changes, event: Order.Cancelled) -> None:
        self._step(
            changes,
            event,
            OrderStatus.CANCELLED,
            cancellation_reason=event.reason,
            cancelled_at=event.timestamp,
        )

    @staticmethod
    def _step(
        changes: Changes, event: Order.Event, status: OrderStatus, **values: object
    ) -> None:
        changes["order_summaries"].update(
            event.originator_id,
            status=status.value,
            updated_at=event.timestamp,
            **values,
        )
