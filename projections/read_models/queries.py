"""Reading the read models: frozen rows out of the active generation's tables.

Every function reads in one ``ViewStore.reading`` transaction, a single snapshot,
so a summary and its lines always come from the same batch of events, even while
a rebuild switches readers to another generation. Views are eventually
consistent: they show what the subscribers had handled when the query ran.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import Connection, Row, Table, select

from domain.values import Line
from projections.read_models.carts import CartSummaries
from projections.read_models.customer_orders import CustomerOrderHistory
from projections.read_models.orders import SKU_SEPARATOR, OrderSummaries
from projections.read_models.payment_deadlines import PaymentDeadlines
from projections.read_models.sales import ProductSales
from projections.read_models.stock import StockLevels
from projections.store import ViewStore
from projections.store.engine import as_utc


@dataclass(frozen=True)
class CartSummary:
    cart_id: UUID
    customer_id: str
    status: str
    lines: tuple[Line, ...]
    item_count: int
    """Units in the cart: the sum of the lines' quantities."""
    total: Decimal
    order_id: UUID | None
    opened_at: datetime
    updated_at: datetime


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

    @property
    def line_count(self) -> int:
        return len(self.lines)


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


@dataclass(frozen=True)
class StockLevel:
    sku: str
    name: str
    price: Decimal
    on_hand: int
    reserved: int
    available: int
    updated_at: datetime


@dataclass(frozen=True)
class ProductSalesRow:
    """What the shipped orders hold of one SKU."""

    sku: str
    units_sold: int
    revenue: Decimal
    orders_shipped: int
    last_shipped_at: datetime


# -- carts ----------------------------------------------------------------------


def cart_summary(store: ViewStore, cart_id: UUID) -> CartSummary | None:
    with store.reading(CartSummaries) as view:
        summaries, lines = view.table("cart_summaries"), view.table("cart_lines")
        connection = view.connection
        row = connection.execute(
            select(summaries).where(summaries.c.cart_id == cart_id)
        ).one_or_none()
        if row is None:
            return None
        line_rows = connection.execute(
            select(lines).where(lines.c.cart_id == cart_id).order_by(lines.c.position)
        ).all()
    return CartSummary(
        cart_id=row.cart_id,
        customer_id=row.customer_id,
        status=row.status,
        lines=tuple(_line(line) for line in line_rows),
        item_count=row.item_count,
        total=row.total,
        order_id=row.order_id,
        opened_at=as_utc(row.opened_at),
        updated_at=as_utc(row.updated_at),
    )


# -- orders ---------------------------------------------------------------------


def order_summary(store: ViewStore, order_id: UUID) -> OrderSummary | None:
    found = _order_summaries(store, order_id=order_id)
    return found[0] if found else None


def order_statuses(store: ViewStore, order_ids: Collection[UUID]) -> dict[UUID, str]:
    """The status of each of ``order_ids`` that the order view holds (those it
    does not hold are left out), in one query: for a caller watching many
    orders, where a summary per order would cost a query per order."""
    if not order_ids:
        return {}
    with store.reading(OrderSummaries) as view:
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
    with store.reading(OrderSummaries) as view:
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
        lines_of = _lines_of_orders(connection, lines, [row.order_id for row in rows])
    return tuple(
        OrderSummary(
            order_id=row.order_id,
            cart_id=row.cart_id,
            customer_id=row.customer_id,
            status=row.status,
            lines=lines_of.get(row.order_id, ()),
            total=row.total,
            short_skus=tuple(row.short_skus.split(SKU_SEPARATOR))
            if row.short_skus
            else (),
            rejection_reason=row.rejection_reason,
            cancellation_reason=row.cancellation_reason,
            placed_at=as_utc(row.placed_at),
            confirmed_at=_utc_or_none(row.confirmed_at),
            rejected_at=_utc_or_none(row.rejected_at),
            paid_at=_utc_or_none(row.paid_at),
            shipped_at=_utc_or_none(row.shipped_at),
            cancelled_at=_utc_or_none(row.cancelled_at),
            updated_at=as_utc(row.updated_at),
        )
        for row in rows
    )


# -- customers ------------------------------------------------------------------


def customer_history(store: ViewStore, customer_id: str) -> CustomerHistory:
    """A customer's orders, newest first, and totals (all zero if none seen)."""
    with store.reading(CustomerOrderHistory) as view:
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
        orders=tuple(
            CustomerOrder(
                order_id=row.order_id,
                status=row.status,
                total=row.total,
                placed_at=as_utc(row.placed_at),
                updated_at=as_utc(row.updated_at),
            )
            for row in rows
        ),
        orders_placed=0 if total is None else total.orders_placed,
        orders_shipped=0 if total is None else total.orders_shipped,
        amount_spent=Decimal("0.00") if total is None else total.amount_spent,
    )


# -- stock ----------------------------------------------------------------------


def stock_levels(store: ViewStore) -> tuple[StockLevel, ...]:
    """Every registered SKU's stock, by SKU."""
    with store.reading(StockLevels) as view:
        levels = view.table("stock_levels")
        rows = view.connection.execute(select(levels).order_by(levels.c.sku)).all()
    return tuple(_stock_level(row) for row in rows)


def stock_level(store: ViewStore, sku: str) -> StockLevel | None:
    with store.reading(StockLevels) as view:
        levels = view.table("stock_levels")
        row = view.connection.execute(
            select(levels).where(levels.c.sku == sku)
        ).one_or_none()
    return None if row is None else _stock_level(row)


def _stock_level(row: Row[tuple[object, ...]]) -> StockLevel:
    return StockLevel(
        sku=row.sku,
        name=row.name,
        price=row.price,
        on_hand=row.on_hand,
        reserved=row.reserved,
        available=row.available,
        updated_at=as_utc(row.updated_at),
    )


# -- sales ----------------------------------------------------------------------


def product_sales(store: ViewStore) -> tuple[ProductSalesRow, ...]:
    """Every SKU that has shipped, highest revenue first (then by SKU)."""
    with store.reading(ProductSales) as view:
        sales = view.table("product_sales")
        rows = view.connection.execute(
            select(sales).order_by(sales.c.revenue.desc(), sales.c.sku)
        ).all()
    return tuple(
        ProductSalesRow(
            sku=row.sku,
            units_sold=row.units_sold,
            revenue=row.revenue,
            orders_shipped=row.orders_shipped,
            last_shipped_at=as_utc(row.last_shipped_at),
        )
        for row in rows
    )


# -- payment deadlines ----------------------------------------------------------


@dataclass(frozen=True)
class PaymentDeadline:
    order_id: UUID
    due_at: datetime


def payment_deadlines_due(
    store: ViewStore, now: datetime
) -> tuple[PaymentDeadline, ...]:
    """The pending payment deadlines that have passed at ``now`` (timezone-aware),
    earliest first."""
    with store.reading(PaymentDeadlines) as view:
        deadlines = view.table("payment_deadlines")
        rows = view.connection.execute(
            select(deadlines)
            # In UTC, as stored: SQLite compares the times as text.
            .where(deadlines.c.due_at <= now.astimezone(UTC))
            .order_by(deadlines.c.due_at, deadlines.c.order_id)
        ).all()
    return tuple(PaymentDeadline(row.order_id, as_utc(row.due_at)) for row in rows)


# -- shared ---------------------------------------------------------------------


def _lines_of_orders(
    connection: Connection, lines: Table, order_ids: Sequence[UUID]
) -> dict[UUID, tuple[Line, ...]]:
    if not order_ids:
        return {}
    found: dict[UUID, list[Line]] = {}
    for row in connection.execute(
        select(lines)
        .where(lines.c.order_id.in_(order_ids))
        .order_by(lines.c.order_id, lines.c.position)
    ):
        found.setdefault(row.order_id, []).append(_line(row))
    return {order_id: tuple(owned) for order_id, owned in found.items()}


def _line(row: Row[tuple[object, ...]]) -> Line:
    return Line(sku=row.sku, quantity=row.quantity, unit_price=row.unit_price)


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)
