"""The Inventory service: one aggregate per SKU, holding stock and reservations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from eventsourcing.domain import MutableOrImmutableAggregate

from application.services.aggregate_views import StockView
from application.services.batch import Batch, LoadedSoFar, needs
from application.services.process import ProcessService
from domain.allocation import Allocation, AllocationStatus, allocation_id
from domain.errors import ProductAlreadyRegisteredError, ProductNotFoundError
from domain.inventory import InventoryItem
from domain.order import Order
from domain.values import inventory_item_id, parse_sku
from projections.read_model import handles


def _allocation_and_items(placed: Order.Placed, _: LoadedSoFar) -> Iterator[UUID]:
    yield allocation_id(placed.originator_id)
    for line in placed.lines:
        yield inventory_item_id(line.sku)


def _allocation_then_its_items(
    settled: Order.Cancelled | Order.Shipped, batch: LoadedSoFar
) -> Iterator[UUID]:
    """The order's allocation, and once it is loaded, the items it holds."""
    yield allocation_id(settled.originator_id)
    allocation = batch.loaded(allocation_id(settled.originator_id), Allocation)
    if allocation is not None:
        for line in allocation.lines:
            yield inventory_item_id(line.sku)


class Inventory(ProcessService[InventoryItem, str]):
    """Stock per SKU; sets stock aside for placed orders, all lines or none, and
    releases or commits it when the order is cancelled or shipped."""

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

    # -- reactions -----------------------------------------------------------

    @handles(Order.Placed)
    @needs(_allocation_and_items)
    def _allocate_placed_order(self, event: Order.Placed, batch: Batch) -> None:
        order_id = event.originator_id
        if batch.load(allocation_id(order_id), Allocation) is not None:
            return
        allocation = Allocation.request(order_id, event.lines)
        items = {
            line.sku: batch.load(inventory_item_id(line.sku), InventoryItem)
            for line in event.lines
        }
        short = sorted(
            line.sku
            for line in event.lines
            if (item := items[line.sku]) is None or item.available < line.quantity
        )
        if short:
            allocation.refuse(short, f"not enough stock of {', '.join(short)}")
            batch.record(allocation)
            return
        reserved: list[InventoryItem] = []
        for line in event.lines:
            item = items[line.sku]
            assert item is not None
            item.reserve(order_id, line.quantity)
            reserved.append(item)
        allocation.reserve()
        batch.record(allocation, *reserved)

    @handles(Order.Cancelled)
    @needs(_allocation_then_its_items)
    def _release_cancelled_order(self, event: Order.Cancelled, batch: Batch) -> None:
        self._settle(
            event.originator_id, batch, InventoryItem.release, Allocation.release
        )

    @handles(Order.Shipped)
    @needs(_allocation_then_its_items)
    def _commit_shipped_order(self, event: Order.Shipped, batch: Batch) -> None:
        self._settle(
            event.originator_id, batch, InventoryItem.commit, Allocation.commit
        )

    def _settle(
        self,
        order_id: UUID,
        batch: Batch,
        settle_item: Callable[[InventoryItem, UUID], None],
        settle_allocation: Callable[[Allocation], None],
    ) -> None:
        """Releases or commits every line an order holds, with its allocation."""
        allocation = batch.load(allocation_id(order_id), Allocation)
        if allocation is None or allocation.status != AllocationStatus.RESERVED:
            return
        items = []
        for line in allocation.lines:
            item = batch.load(inventory_item_id(line.sku), InventoryItem)
            assert item is not None, "reserved stock belongs to a registered item"
            settle_item(item, order_id)
            items.append(item)
        settle_allocation(allocation)
        batch.record(allocation, *items)
