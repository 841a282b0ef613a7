"""Cart summaries: each cart's status, lines, units and total, as Carts records
them; the table, its handlers, and reading it (``cart_summary``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Numeric,
    String,
    Table,
    Uuid,
    select,
)

from domain.cart import Cart, CartStatus
from domain.values import Line
from projections.batching.changes import Changes
from projections.read_model import ReadModel, handles, new_metadata
from projections.read_models.lines import line_table, lines_of
from projections.read_models.rows import row_as
from projections.store import ViewStore


class CartSummaries(ReadModel):
    """``item_count`` is the number of units in the cart (the sum of the lines'
    quantities); ``total`` the sum of the lines' subtotals."""

    name = "carts"
    follows = "Carts"
    metadata = new_metadata()

    Table(
        "cart_summaries",
        metadata,
        Column("cart_id", Uuid, primary_key=True),
        Column("customer_id", String(200), nullable=False, index=True),
        Column("status", String(20), nullable=False),
        Column("item_count", BigInteger, nullable=False),
        # Wider than a price: a valid cart reaches 10**12 on one line
        # (a million units at a million each), and an overflow would stop
        # the subscriber for good.
        Column("total", Numeric(18, 2), nullable=False),
        Column("order_id", Uuid, nullable=True),
        Column("opened_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    # Lines are listed in the order their SKUs were first added, as the
    # aggregate keeps them.
    line_table("cart_lines", metadata, owner="cart_id")

    loads = {"cart_lines": "cart_id"}

    @handles(Cart.Opened)
    def opened(self, changes: Changes, event: Cart.Opened) -> None:
        changes["cart_summaries"].insert(
            cart_id=event.originator_id,
            customer_id=event.customer_id,
            status=CartStatus.OPEN.value,
            item_count=0,
            total=Decimal("0.00"),
            order_id=None,
            opened_at=event.timestamp,
            updated_at=event.timestamp,
        )

    @handles(Cart.ItemAdded)
    def item_added(self, changes: Changes, event: Cart.ItemAdded) -> None:
        lines = changes["cart_lines"]
        line = lines.get((event.originator_id, event.sku))
        if line is None:
            last = max(
                (
                    other["position"]
                    for other in lines.where(cart_id=event.originator_id)
                ),
                default=0,
            )
            lines.insert(
                cart_id=event.originator_id,
                sku=event.sku,
                quantity=event.quantity,
                unit_price=event.unit_price,
                position=last + 1,
            )
        else:
            # As the aggregate merges: the units add up, the latest price wins.
            lines.update(
                line,
                quantity=line["quantity"] + event.quantity,
                unit_price=event.unit_price,
            )
        self._recount(changes, event)

    @handles(Cart.QuantityChanged)
    def quantity_changed(self, changes: Changes, event: Cart.QuantityChanged) -> None:
        changes["cart_lines"].update(
            (event.originator_id, event.sku), quantity=event.quantity
        )
        self._recount(changes, event)

    @handles(Cart.ItemRemoved)
    def item_removed(self, changes: Changes, event: Cart.ItemRemoved) -> None:
        changes["cart_lines"].delete((event.originator_id, event.sku))
        self._recount(changes, event)

    @handles(Cart.CheckedOut)
    def checked_out(self, changes: Changes, event: Cart.CheckedOut) -> None:
        changes["cart_summaries"].update(
            event.originator_id,
            status=CartStatus.CHECKED_OUT.value,
            order_id=event.order_id,
            updated_at=event.timestamp,
        )

    @handles(Cart.Abandoned)
    def abandoned(self, changes: Changes, event: Cart.Abandoned) -> None:
        changes["cart_summaries"].update(
            event.originator_id,
            status=CartStatus.ABANDONED.value,
            updated_at=event.timestamp,
        )

    @staticmethod
    def _recount(changes: Changes, event: Cart.Event) -> None:
        """Derives the summary's units and total from the lines, so the two can
        never disagree. Summed here in Decimal: SQLite would sum floats."""
        lines = changes["cart_lines"].where(cart_id=event.originator_id)
        changes["cart_summaries"].update(
            event.originator_id,
            item_count=sum(line["quantity"] for line in lines),
            total=sum(
                (line["quantity"] * line["unit_price"] for line in lines),
                Decimal("0.00"),
            ),
            updated_at=event.timestamp,
        )


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


def cart_summary(store: ViewStore, cart_id: UUID) -> CartSummary | None:
    """The cart's summary and lines, read in one snapshot; None if the view
    does not hold the cart (yet)."""
    with store.registry.reading(CartSummaries) as view:
        summaries, lines = view.table("cart_summaries"), view.table("cart_lines")
        connection = view.connection
        row = connection.execute(
            select(summaries).where(summaries.c.cart_id == cart_id)
        ).one_or_none()
        if row is None:
            return None
        lines_of_cart = lines_of(connection, lines, "cart_id", [cart_id])
    return row_as(CartSummary, row, lines=lines_of_cart.get(cart_id, ()))
