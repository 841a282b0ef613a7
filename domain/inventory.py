"""Stock of one SKU: units on hand and the units reserved for orders."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import (
    InsufficientStockError,
    InvalidQuantityError,
    ReservationNotFoundError,
    StockBelowReservedError,
)
from domain.values import (
    MAX_QUANTITY,
    inventory_item_id,
    parse_count,
    parse_id,
    parse_price,
    parse_quantity,
    parse_sku,
    parse_text,
)


class InventoryItem(Aggregate):
    """The stock of one SKU; its id derives from the SKU.

    Invariants: ``0 <= reserved <= on_hand`` and at most one reservation per order.
    Reservations are stored keyed by ``str(order_id)`` because the JSON transcoder
    turns every dict key into a string, so a snapshot keyed by UUID would not
    round-trip; ``reservations`` presents them keyed by UUID.
    """

    class Registered(Aggregate.Created):
        sku: str
        name: str
        price: Decimal

    class StockReceived(Aggregate.Event):
        quantity: int

    class StockAdjusted(Aggregate.Event):
        counted: int
        delta: int
        reason: str

    class StockReserved(Aggregate.Event):
        order_id: UUID
        quantity: int

    class ReservationReleased(Aggregate.Event):
        order_id: UUID
        quantity: int

    class ReservationCommitted(Aggregate.Event):
        order_id: UUID
        quantity: int

    # -- creation ------------------------------------------------------------

    @staticmethod
    def create_id(sku: str) -> UUID:
        return inventory_item_id(sku)

    @classmethod
    def register(cls, sku: str, name: str, price: Decimal | int | str) -> InventoryItem:
        return cls(
            sku=parse_sku(sku),
            name=parse_text(name, "name"),
            price=parse_price(price),
        )

    @event(Registered)
    def __init__(self, sku: str, name: str, price: Decimal) -> None:
        self._sku = sku
        self._name = name
        self._price = price
        self._on_hand = 0
        self._reservations: dict[str, int] = {}

    # -- state ---------------------------------------------------------------

    @property
    def sku(self) -> str:
        return self._sku

    @property
    def name(self) -> str:
        return self._name

    @property
    def price(self) -> Decimal:
        return self._price

    @property
    def on_hand(self) -> int:
        return self._on_hand

    @property
    def reserved(self) -> int:
        return sum(self._reservations.values())

    @property
    def available(self) -> int:
        return self._on_hand - self.reserved

    @property
    def reservations(self) -> Mapping[UUID, int]:
        return MappingProxyType(
            {UUID(key): quantity for key, quantity in self._reservations.items()}
        )

    def reserved_for(self, order_id: UUID) -> int:
        """Units reserved for the order, 0 if none."""
        return self._reservations.get(str(order_id), 0)

    # -- commands ------------------------------------------------------------

    def receive(self, quantity: int) -> None:
        """Units arrived and are now on hand."""
        quantity = parse_quantity(quantity)
        if self._on_hand + quantity > MAX_QUANTITY:
            raise InvalidQuantityError(
                "quantity",
                quantity,
                f"would put {self._on_hand + quantity} on hand, "
                f"more than {MAX_QUANTITY}",
            )
        self._receive(quantity=quantity)

    def adjust(self, counted: int, reason: str) -> None:
        """A stock count found ``counted`` units on hand; records the difference."""
        counted = parse_count(counted)
        reason = parse_text(reason, "reason")
        if counted < self.reserved:
            raise StockBelowReservedError(self._sku, counted, self.reserved)
        if counted == self._on_hand:
            return
        self._adjust(counted=counted, delta=counted - self._on_hand, reason=reason)

    def reserve(self, order_id: UUID, quantity: int) -> None:
        """Holds units for an order; a second call for the same order does nothing."""
        order_id = parse_id(order_id, "order_id")
        quantity = parse_quantity(quantity)
        if str(order_id) in self._reservations:
            return
        if quantity > self.available:
            raise InsufficientStockError(self._sku, quantity, self.available)
        self._reserve(order_id=order_id, quantity=quantity)

    def release(self, order_id: UUID) -> None:
        """Gives an order's reserved units back to the available stock."""
        order_id = parse_id(order_id, "order_id")
        quantity = self._reservation_of(order_id)
        self._release(order_id=order_id, quantity=quantity)

    def commit(self, order_id: UUID) -> None:
        """An order's reserved units left the building."""
        order_id = parse_id(order_id, "order_id")
        quantity = self._reservation_of(order_id)
        self._commit(order_id=order_id, quantity=quantity)

    def _reservation_of(self, order_id: UUID) -> int:
        try:
            return self._reservations[str(order_id)]
        except KeyError:
            raise ReservationNotFoundError(self._sku, order_id) from None

    # -- events applied (no rules here: they also run on replay) -------------

    @event(StockReceived)
    def _receive(self, quantity: int) -> None:
        self._on_hand += quantity

    @event(StockAdjusted)
    def _adjust(self, counted: int, delta: int, reason: str) -> None:
        self._on_hand = counted

    @event(StockReserved)
    def _reserve(self, order_id: UUID, quantity: int) -> None:
        self._reservations[str(order_id)] = quantity

    @event(ReservationReleased)
    def _release(self, order_id: UUID, quantity: int) -> None:
        del self._reservations[str(order_id)]

    @event(ReservationCommitted)
    def _commit(self, order_id: UUID, quantity: int) -> None:
        del self._reservations[str(order_id)]
        self._on_hand -= quantity
