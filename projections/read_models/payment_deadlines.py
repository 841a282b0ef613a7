"""Payment deadlines still pending: one row per confirmed order not yet paid.

A row appears when an order is confirmed with a payment deadline and goes when
the order is paid, cancelled, shipped or rejected, so the table is exactly the
set of deadlines that may still fire. Being a projection, it survives restarts
and can be rebuilt from the Orders log like any other read model.
``payment_deadlines_due`` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import Column, DateTime, Table, Uuid, select

from domain.order import Order
from projections.batching.changes import Changes
from projections.read_model import ReadModel, handles, new_metadata
from projections.store import ViewStore
from projections.store.engine import as_utc


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


@dataclass(frozen=True)
class PaymentDeadline:
    order_id: UUID
    due_at: datetime


def payment_deadlines_due(
    store: ViewStore, now: datetime
) -> tuple[PaymentDeadline, ...]:
    """The pending payment deadlines that have passed at ``now`` (timezone-aware),
    earliest first."""
    with store.registry.reading(PaymentDeadlines) as view:
        deadlines = view.table("payment_deadlines")
        rows = view.connection.execute(
            select(deadlines)
            # In UTC, as stored: SQLite compares the times as text.
            .where(deadlines.c.due_at <= now.astimezone(UTC))
            .order_by(deadlines.c.due_at, deadlines.c.order_id)
        ).all()
    return tuple(PaymentDeadline(row.order_id, as_utc(row.due_at)) for row in rows)
