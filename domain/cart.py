"""The shopping cart: lines a customer collects before checking out."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import (
    CartClosedError,
    CustomerForgottenError,
    EmptyCartError,
    InvalidInputError,
    InvalidQuantityError,
    ItemNotInCartError,
)
from domain.values import (
    MAX_QUANTITY,
    DeliveryDetails,
    Line,
    order_id_for_cart,
    parse_price,
    parse_quantity,
    parse_sku,
    parse_text,
    total_of,
)


class CartStatus(StrEnum):
    OPEN = "open"
    CHECKED_OUT = "checked_out"
    ABANDONED = "abandoned"


class Cart(Aggregate):
    """A customer's cart; it becomes an order when checked out.

    State is kept in JSON-shaped attributes (str, str-keyed dict, Line, Decimal) so
    that the default snapshot round-trips; properties present immutable views.
    """

    class Opened(Aggregate.Created):
        customer_id: str

    class ItemAdded(Aggregate.Event):
        sku: str
        quantity: int
        unit_price: Decimal

    class QuantityChanged(Aggregate.Event):
        sku: str
        quantity: int

    class ItemRemoved(Aggregate.Event):
        sku: str

    class CheckedOut(Aggregate.Event):
        order_id: UUID
        customer_id: str
        lines: list[Line]
        total: Decimal
        # None in events stored before checkouts took delivery details.
        delivery: DeliveryDetails | None = None

    class Abandoned(Aggregate.Event):
        pass

    # -- creation ------------------------------------------------------------

    @classmethod
    def open(cls, customer_id: str) -> Cart:
        return cls(customer_id=parse_text(customer_id, "customer_id"))

    @event(Opened)
    def __init__(self, customer_id: str) -> None:
        self._customer_id = customer_id
        self._status: str = CartStatus.OPEN
        # Insertion-ordered, so lines keep the order their SKUs were first added.
        self._lines: dict[str, Line] = {}
        self._order_id: UUID | None = None

    # -- state ---------------------------------------------------------------

    @property
    def customer_id(self) -> str:
        return self._customer_id

    @property
    def status(self) -> CartStatus:
        # A snapshot decodes the stored member as a plain str.
        return CartStatus(self._status)

    @property
    def lines(self) -> tuple[Line, ...]:
        return tuple(self._lines.values())

    @property
    def total(self) -> Decimal:
        return total_of(self.lines)

    @property
    def order_id(self) -> UUID | None:
        return self._order_id

    def quantity_of(self, sku: str) -> int:
        line = self._lines.get(sku)
        return 0 if line is None else line.quantity

    # -- commands ------------------------------------------------------------

    def add_item(
        self, sku: str, quantity: int, unit_price: Decimal | int | str
    ) -> None:
        """Adds units of a SKU; an existing line grows and takes the new price."""
        self._check_open()
        sku = parse_sku(sku)
        quantity = parse_quantity(quantity)
        unit_price = parse_price(unit_price, "unit_price")
        combined = self.quantity_of(sku) + quantity
        if combined > MAX_QUANTITY:
            raise InvalidQuantityError(
                "quantity", combined, f"a line holds at most {MAX_QUANTITY} units"
            )
        self._add_item(sku=sku, quantity=quantity, unit_price=unit_price)

    def change_quantity(self, sku: str, quantity: int) -> None:
        """Sets a line's quantity; use remove_item to drop the line."""
        self._check_open()
        sku = parse_sku(sku)
        quantity = parse_quantity(quantity)
        if sku not in self._lines:
            raise ItemNotInCartError(self.id, sku)
        if quantity == self._lines[sku].quantity:
            return
        self._change_quantity(sku=sku, quantity=quantity)

    def remove_item(self, sku: str) -> None:
        self._check_open()
        sku = parse_sku(sku)
        if sku not in self._lines:
            raise ItemNotInCartError(self.id, sku)
        self._remove_item(sku=sku)

    def check_out(self, delivery: DeliveryDetails | None = None) -> None:
        """Closes the cart; its order goes where ``delivery`` says, which must
        be the details of the cart's own customer."""
        self._check_open()
        if not self._lines:
            raise EmptyCartError(self.id)
        if delivery is not None:
            _check_delivery(delivery, self._customer_id)
        lines = self.lines
        self._check_out(
            order_id=order_id_for_cart(self.id),
            customer_id=self._customer_id,
            lines=list(lines),
            total=total_of(lines),
            delivery=delivery,
        )

    def abandon(self) -> None:
        self._check_open()
        self._abandon()

    def _check_open(self) -> None:
        if self._status != CartStatus.OPEN:
            raise CartClosedError(self.id, self.status.value)

    # -- events applied (no rules here: they also run on replay) -------------

    @event(ItemAdded)
    def _add_item(self, sku: str, quantity: int, unit_price: Decimal) -> None:
        self._lines[sku] = Line(sku, self.quantity_of(sku) + quantity, unit_price)

    @event(QuantityChanged)
    def _change_quantity(self, sku: str, quantity: int) -> None:
        line = self._lines[sku]
        self._lines[sku] = Line(sku, quantity, line.unit_price)

    @event(ItemRemoved)
    def _remove_item(self, sku: str) -> None:
        del self._lines[sku]

    @event(CheckedOut)
    def _check_out(
        self,
        order_id: UUID,
        customer_id: str,
        lines: list[Line],
        total: Decimal,
        delivery: DeliveryDetails | None = None,
    ) -> None:
        self._status = CartStatus.CHECKED_OUT
        self._order_id = order_id

    @event(Abandoned)
    def _abandon(self) -> None:
        self._status = CartStatus.ABANDONED


def _check_delivery(delivery: object, customer_id: str) -> None:
    if not isinstance(delivery, DeliveryDetails):
        raise InvalidInputError("delivery", delivery, "must be DeliveryDetails")
    if delivery.forgotten:
        raise CustomerForgottenError(customer_id)
    if delivery.customer_id != customer_id:
        raise InvalidInputError(
            "delivery", delivery.customer_id, f"are not of customer {customer_id!r}"
        )
