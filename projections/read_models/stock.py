"""Stock levels per SKU: on hand, reserved and available, as Inventory records
them; the table, its handlers, and reading it (``stock_levels``, ``stock_level``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    Numeric,
    String,
    Table,
    Uuid,
    select,
)

from domain.inventory import InventoryItem
from projections.batching.changes import Changes
from projections.read_model import ReadModel, handles, new_metadata
from projections.read_models.rows import row_as
from projections.store import ViewStore


class StockLevels(ReadModel):
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
    def registered(self, changes: Changes, event: InventoryItem.Registered) -> None:
        changes["stock_levels"].insert(
            item_id=event.originator_id,
            sku=event.sku,
            name=event.name,
            price=event.price,
            on_hand=0,
            reserved=0,
            available=0,
            updated_at=event.timestamp,
        )

    @handles(InventoryItem.StockReceived)
    def received(self, changes: Changes, event: InventoryItem.StockReceived) -> None:
        self._move(changes, event, on_hand=event.quantity)

    @handles(InventoryItem.StockAdjusted)
    def adjusted(self, changes: Changes, event: InventoryItem.StockAdjusted) -> None:
        self._move(changes, event, on_hand=event.delta)

    @handles(InventoryItem.StockReserved)
    def reserved(self, changes: Changes, event: InventoryItem.StockReserved) -> None:
        self._move(changes, event, reserved=event.quantity)

    @handles(InventoryItem.ReservationReleased)
    def released(
        self, changes: Changes, event: InventoryItem.ReservationReleased
    ) -> None:
        self._move(changes, event, reserved=-event.quantity)

    @handles(InventoryItem.ReservationCommitted)
    def committed(
        self, changes: Changes, event: InventoryItem.ReservationCommitted
    ) -> None:
        self._move(changes, event, on_hand=-event.quantity, reserved=-event.quantity)

    @staticmethod
    def _move(
        changes: Changes,
        event: InventoryItem.Event,
        *,
        on_hand: int = 0,
        reserved: int = 0,
    ) -> None:
        levels = changes["stock_levels"]
        levels.add(
            event.originator_id,
            on_hand=on_hand,
            reserved=reserved,
            available=on_hand - reserved,
        )
        levels.update(event.originator_id, updated_at=event.timestamp)


@dataclass(frozen=True)
class StockLevel:
    sku: str
    name: str
    price: Decimal
    on_hand: int
    reserved: int
    available: int
    updated_at: datetime


def stock_levels(store: ViewStore) -> tuple[StockLevel, ...]:
    """Every registered SKU's stock, by SKU."""
    with store.registry.reading(StockLevels) as view:
        levels = view.table("stock_levels")
        rows = view.connection.execute(select(levels).order_by(levels.c.sku)).all()
    return tuple(row_as(StockLevel, row) for row in rows)


def stock_level(store: ViewStore, sku: str) -> StockLevel | None:
    with store.registry.reading(StockLevels) as view:
        levels = view.table("stock_levels")
        row = view.connection.execute(
            select(levels).where(levels.c.sku == sku)
        ).one_or_none()
    return None if row is None else row_as(StockLevel, row)
