"""The Inventory service: one aggregate per SKU, holding stock and reservations."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from eventsourcing.domain import MutableOrImmutableAggregate

from application.dto import StockView
from application.services.base import ShopService
from domain.errors import ProductAlreadyRegisteredError, ProductNotFoundError
from domain.inventory import InventoryItem
from domain.values import inventory_item_id, parse_sku


class Inventory(ShopService[InventoryItem, str]):
    aggregate_class = InventoryItem
    # Busy SKUs collect long histories of reservations; a snapshot every 50
    # events bounds what a command has to replay.
    snapshotting_intervals: ClassVar[
        dict[type[MutableOrImmutableAggregate[UUID]], int]
    ] = {InventoryItem: 50}

    def aggregate_id(self, key: str) -> UUID:
        return inventory_item_id(parse_sku(key))

    def not_found(self, key: str) -> ProductNotFoundError:
        return ProductNotFoundError(key)

    def register_product(self, sku: str, name: str, price: Decimal | int | str) -> None:
        item = InventoryItem.register(sku, name, price)
        if not self._add(item):
            raise ProductAlreadyRegisteredError(item.sku)

    def receive_stock(self, sku: str, quantity: int) -> None:
        self._change(sku, lambda item: item.receive(quantity))

    def adjust_stock(self, sku: str, counted: int, reason: str) -> None:
        self._change(sku, lambda item: item.adjust(counted, reason))

    def reserve(self, sku: str, order_id: UUID, quantity: int) -> None:
        self._change(sku, lambda item: item.reserve(order_id, quantity))

    def release(self, sku: str, order_id: UUID) -> None:
        self._change(sku, lambda item: item.release(order_id))

    def commit(self, sku: str, order_id: UUID) -> None:
        self._change(sku, lambda item: item.commit(order_id))

    def get_stock(self, sku: str) -> StockView:
        item = self._load(sku)
        return StockView(
            sku=item.sku,
            name=item.name,
            price=item.price,
            on_hand=item.on_hand,
            reserved=item.reserved,
            available=item.available,
            version=item.version,
        )
