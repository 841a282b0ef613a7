"""Order summaries: each order's lines, status and the time of every step; the
tables, their handlers, and reading them (``order_summary``, ``orders``,
``order_statuses``)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    Numeric,
    Row,
    String,
    Table,
    Text,
    Uuid,
    select,
)

from domain.customer import CustomerErasure, customer_erasure_id
from domain.order import Order, OrderStatus
from domain.values import FORGOTTEN, DeliveryDetails, Line
from projections.batching.changes import Changes
from projections.read_model import ReadModel, handles, new_metadata
from projections.read_models.lines import line_table, lines_of
from projections.read_models.rows import row_as
from projections.store import ViewStore

SKU_SEPARATOR = ","
"""Joins ``short_skus`` into one column; a SKU never holds a comma."""


class OrderSummaries(ReadModel):
    """A customer forgotten (``CustomerErasure.Forgotten``) has the delivery
    details of their orders overwritten with the marker, found by
    ``customer_key``, the id of that customer's erasure."""

    name = "orders"
    follows = "Orders"
    metadata = new_metadata()
    # 2: the delivery details.
    version = 2
    loads = {"order_summaries": "customer_key"}
    # An erasure is created by the very event that names its rows.
    loads_before_creation = frozenset({"order_summaries"})

    Table(
        "order_summaries",
        metadata,
        Column("order_id", Uuid, primary_key=True),
        Column("cart_id", Uuid, nullable=False),
        Column("customer_id", String(200), nullable=False, index=True),
        # NULL for orders placed before checkouts took delivery details.
        Column("customer_key", Uuid, nullable=True, index=True),
        Column("delivery_name", Text, nullable=True),
        Column("delivery_email", Text, nullable=True),
        Column("delivery_address", Text, nullable=True),
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
    # Lines are listed in the order the order was placed with.
    line_table("order_lines", metadata, owner="order_id")

    @handles(Order.Placed)
    def placed(self, changes: Changes, event: Order.Placed) -> None:
        delivery = event.delivery
        changes["order_summaries"].insert(
            order_id=event.originator_id,
            cart_id=event.cart_id,
            customer_id=event.customer_id,
            customer_key=None
            if delivery is None
            else customer_erasure_id(event.customer_id),
            delivery_name=None if delivery is None else delivery.name,
            delivery_email=None if delivery is None else delivery.email,
            delivery_address=None if delivery is None else delivery.address,
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

    @handles(CustomerErasure.Forgotten)
    def forgotten(self, changes: Changes, event: CustomerErasure.Forgotten) -> None:
        summaries = changes["order_summaries"]
        for row in summaries.where(customer_key=event.originator_id):
            summaries.update(
                row,
                delivery_name=FORGOTTEN,
                delivery_email=FORGOTTEN,
                delivery_address=FORGOTTEN,
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


@dataclass(frozen=True)
class OrderSummary:
    order_id: UUID
    cart_id: UUID
    customer_id: str
    status: str
    lines: tuple[Line, ...]
    total: Decimal
    short_skus: tuple[str, ...]
    rejection_reason: str | None
    cancellation_reason: str | None
    placed_at: datetime
    confirmed_at: datetime | None
    rejected_at: datetime | None
    paid_at: datetime | None
    shipped_at: datetime | None
    cancelled_at: datetime | None
    updated_at: datetime
    delivery: DeliveryDetails | None = None
    """None for orders placed before checkouts took delivery details."""

    @property
    def line_count(self) -> int:
        return len(self.lines)


def order_summary(store: ViewStore, order_id: UUID) -> OrderSummary | None:
    found = _order_summaries(store, order_id=order_id)
    return found[0] if found else None


def order_statuses(store: ViewStore, order_ids: Collection[UUID]) -> dict[UUID, str]:
    """The status of each of ``order_ids`` that the order view holds (those it
    does not hold are left out), in one query: for a caller watching many
    orders, where a summary per order would cost a query per order."""
    if not order_ids:
        return {}
    with store.registry.reading(OrderSummaries) as view:
        summaries = view.table("order_summaries")
        rows = view.connection.execute(
            select(summaries.c.order_id, summaries.c.status).where(
                summaries.c.order_id.in_(list(order_ids))
            )
        ).all()
    return {row.order_id: row.status for row in rows}


def orders(
    store: ViewStore,
    *,
    status: str | None = None,
    customer_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[OrderSummary, ...]:
    """Orders newest first (by the time they were placed), optionally only those
    in one status and/or of one customer."""
    return _order_summaries(
        store, status=status, customer_id=customer_id, limit=limit, offset=offset
    )


def _order_summaries(
    store: ViewStore,
    *,
    order_id: UUID | None = None,
    status: str | None = None,
    customer_id: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[OrderSummary, ...]:
    with store.registry.reading(OrderSummaries) as view:
        summaries, lines = view.table("order_summaries"), view.table("order_lines")
        query = select(summaries).order_by(
            summaries.c.placed_at.desc(), summaries.c.order_id
        )
        if order_id is not None:
            query = query.where(summaries.c.order_id == order_id)
        if status is not None:
            query = query.where(summaries.c.status == status)
        if customer_id is not None:
            query = query.where(summaries.c.customer_id == customer_id)
        if limit is not None:
            query = query.limit(limit).offset(offset)
        connection = view.connection
        rows = connection.execute(query).all()
        lines_of_orders = lines_of(
            connection, lines, "order_id", [row.order_id for row in rows]
        )
    return tuple(
        row_as(
            OrderSummary,
            row,
            lines=lines_of_orders.get(row.order_id, ()),
            short_skus=tuple(row.short_skus.split(SKU_SEPARATOR))
            if row.short_skus
            else (),
            delivery=_delivery_of(row),
        )
        for row in rows
    )


def _delivery_of(row: Row[Any]) -> DeliveryDetails | None:
    if row.delivery_name is None:
        return None
    return DeliveryDetails(
        customer_id=row.customer_id,
        name=row.delivery_name,
        email=row.delivery_email,
        address=row.delivery_address,
    )
