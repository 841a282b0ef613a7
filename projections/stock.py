"""Stock levels per SKU: on hand, reserved and available, as Inventory records them."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    Numeric,
    String,
    Table,
    Uuid,
    insert,
    update,
)

from domain.inventory import InventoryItem
from projections.base import Projection, handles, new_metadata


class StockLevels(Projection):
    name = "stock"
    follows = "Inventory"
    metadata = new_metadata()

    Table(
        "stock_levels",
        metadata,
        Column("item_id", Uuid, primary_key=True),
        Column("sku", String(64), nullable=False, unique=True),
        Column("name", String(200), nullable=False),
        Column("price", Numeric(12, 2), nullable=False),
        Column("on_hand", Integer, nullable=False),
        Column("reserved", Integer, nullable=False),
        Column("available", Integer, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )

    @handles(InventoryItem.Registered)
    def registered(
        self, connection: Connection, event: InventoryItem.Registered
    ) -> None:
        connection.execute(
            insert(self.table("stock_levels")).values(
                item_id=event.originator_id,
                sku=event.sku,
                name=event.name,
                price=event.price,
                on_hand=0,
                reserved=0,
                available=0,
                updated_at=event.timestamp,
            )
        )

    @handles(InventoryItem.StockReceived)
    def received(
        self, connection: Connection, event: InventoryItem.StockReceived
    ) -> None:
        self._move(connection, event, on_hand=event.quantity)

    @handles(InventoryItem.StockAdjusted)
    def adjusted(
        self, connection: Connection, event: InventoryItem.StockAdjusted
    ) -> None:
        self._move(connection, event, on_hand=event.delta)

    @handles(InventoryItem.StockReserved)
    def reserved(
        self, connection: Connection, event: InventoryItem.StockReserved
    ) -> None:
        self._move(connection, event, reserved=event.quantity)

    @handles(InventoryItem.ReservationReleased)
    def released(
        self, connection: Connection, event: InventoryItem.ReservationReleased
    ) -> None:
        self._move(connection, event, reserved=-event.quantity)

    @handles(InventoryItem.ReservationCommitted)
    def committed(
        self, connection: Connection, event: InventoryItem.ReservationCommitted
    ) -> None:
        self._move(connection, event, on_hand=-event.quantity, reserved=-event.quantity)

    def _move(
        self,
        connection: Connection,
        event: InventoryItem.Event,
        *,
        on_hand: int = 0,
        reserved: int = 0,
    ) -> None:
        table = self.table("stock_levels")
        connection.execute(
            update(table)
            .where(table.c.item_id == event.originator_id)
            .values(
                on_hand=table.c.on_hand + on_hand,
                reserved=table.c.reserved + reserved,
                available=table.c.available + on_hand - reserved,
                updated_at=event.timestamp,
            )
        )
