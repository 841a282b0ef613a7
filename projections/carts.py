"""Cart summaries: each cart's status, lines, units and total, as Carts records them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
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
    delete,
    func,
    insert,
    select,
    update,
)

from domain.cart import Cart, CartStatus
from projections.base import Projection, handles, new_metadata


class CartSummaries(Projection):
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
    Table(
        "cart_lines",
        metadata,
        Column("cart_id", Uuid, nullable=False),
        Column("sku", String(64), nullable=False),
        Column("quantity", Integer, nullable=False),
        Column("unit_price", Numeric(12, 2), nullable=False),
        # Lines are listed in the order their SKUs were first added, as the
        # aggregate keeps them.
        Column("position", Integer, nullable=False),
        PrimaryKeyConstraint("cart_id", "sku"),
    )

    @handles(Cart.Opened)
    def opened(self, connection: Connection, event: Cart.Opened) -> None:
        connection.execute(
            insert(self.table("cart_summaries")).values(
                cart_id=event.originator_id,
                customer_id=event.customer_id,
                status=CartStatus.OPEN.value,
                item_count=0,
                total=Decimal("0.00"),
                order_id=None,
                opened_at=event.timestamp,
                updated_at=event.timestamp,
            )
        )

    @handles(Cart.ItemAdded)
    def item_added(self, connection: Connection, event: Cart.ItemAdded) -> None:
        lines = self.table("cart_lines")
        this_line = (lines.c.cart_id == event.originator_id) & (
            lines.c.sku == event.sku
        )
        quantity = connection.execute(
            select(lines.c.quantity).where(this_line)
        ).scalar_one_or_none()
        if quantity is None:
            last = connection.execute(
                select(func.max(lines.c.position)).where(
                    lines.c.cart_id == event.originator_id
                )
            ).scalar_one()
            connection.execute(
                insert(lines).values(
                    cart_id=event.originator_id,
                    sku=event.sku,
                    quantity=event.quantity,
                    unit_price=event.unit_price,
                    position=(last or 0) + 1,
                )
            )
        else:
            # As the aggregate merges: the units add up, the latest price wins.
            connection.execute(
                update(lines)
                .where(this_line)
                .values(quantity=quantity + event.quantity, unit_price=event.unit_price)
            )
        self._recount(connection, event.originator_id, event.timestamp)

    @handles(Cart.QuantityChanged)
    def quantity_changed(
        self, connection: Connection, event: Cart.QuantityChanged
    ) -> None:
        lines = self.table("cart_lines")
        connection.execute(
            update(lines)
            .where(lines.c.cart_id == event.originator_id, lines.c.sku == event.sku)
            .values(quantity=event.quantity)
        )
        self._recount(connection, event.originator_id, event.timestamp)

    @handles(Cart.ItemRemoved)
    def item_removed(self, connection: Connection, event: Cart.ItemRemoved) -> None:
        lines = self.table("cart_lines")
        connection.execute(
            delete(lines).where(
                lines.c.cart_id == event.originator_id, lines.c.sku == event.sku
            )
        )
        self._recount(connection, event.originator_id, event.timestamp)

    @handles(Cart.CheckedOut)
    def checked_out(self, connection: Connection, event: Cart.CheckedOut) -> None:
        self._update(
            connection,
            event,
            status=CartStatus.CHECKED_OUT.value,
            order_id=event.order_id,
        )

    @handles(Cart.Abandoned)
    def abandoned(self, connection: Connection, event: Cart.Abandoned) -> None:
        self._update(connection, event, status=CartStatus.ABANDONED.value)

    def _recount(self, connection: Connection, cart_id: UUID, at: datetime) -> None:
        """Derives the summary's units and total from the lines, so the two can
        never disagree. Summed here in Decimal: SQLite would sum floats."""
        lines = self.table("cart_lines")
        rows = connection.execute(
            select(lines.c.quantity, lines.c.unit_price).where(
                lines.c.cart_id == cart_id
            )
        ).all()
        summaries = self.table("cart_summaries")
        connection.execute(
            update(summaries)
            .where(summaries.c.cart_id == cart_id)
            .values(
                item_count=sum(row.quantity for row in rows),
                total=sum(
                    (row.quantity * row.unit_price for row in rows), Decimal("0.00")
                ),
                updated_at=at,
            )
        )

    def _update(
        self, connection: Connection, event: Cart.Event, **values: object
    ) -> None:
        summaries = self.table("cart_summaries")
        connection.execute(
            update(summaries)
            .where(summaries.c.cart_id == event.originator_id)
            .values(updated_at=event.timestamp, **values)
        )
