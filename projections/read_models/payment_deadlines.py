"""Payment deadlines still pending: one row per confirmed order not yet paid.

A row appears when an order is confirmed with a payment deadline and goes when
the order is paid, cancelled, shipped or rejected, so the table is exactly the
set of deadlines that may still fire. Being a projection, it survives restarts
and can be rebuilt from the Orders log like any other read model.
"""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import Column, DateTime, Table, Uuid

from domain.order import Order
from projections.batching.changes import Changes
from projections.read_model import ReadModel, handles, new_metadata


class PaymentDeadlines(ReadModel):
    name = "payment_deadlines"
    follows = "Orders"
    metadata = new_metadata()

    Table(
        "payment_deadlines",
        metadata,
        Column("order_id", Uuid, primary_key=True),
        Column("due_at", DateTime(timezone=True), nullable=False, index=True),
    )

    @handles(Order.Confirmed)
    def confirmed(self, changes: Changes, event: Order.Confirmed) -> None:
        if event.payment_due_at is None:
            return
        changes["payment_deadlines"].insert(
            order_id=event.originator_id,
            # SQLite keeps no offset: every stored time must be UTC for
            # "due_at <= now" to compare like with like.
            due_at=event.payment_due_at.astimezone(UTC),
        )

    @handles(Order.Paid, Order.Cancelled, Order.Shipped, Order.Rejected)
    def settled(self, changes: Changes, event: Order.Event) -> None:
        changes["payment_deadlines"].delete(event.originator_id)
