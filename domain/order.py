"""The order a checked-out cart becomes, and its life until shipped or stopped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidInputError, OrderStateError, PaymentNotOverdueError
from domain.values import (
    DeliveryDetails,
    Line,
    order_id_for_cart,
    parse_id,
    parse_moment,
    parse_price,
    parse_quantity,
    parse_sku,
    parse_text,
    total_of,
)


class OrderStatus(StrEnum):
    PLACED = "placed"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    PAID = "paid"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


PAYMENT_NOT_RECEIVED = "payment not received"
"""How the reason of a cancellation for want of payment begins."""

FINAL_STATUSES = frozenset(
    {OrderStatus.REJECTED, OrderStatus.SHIPPED, OrderStatus.CANCELLED}
)


class Order(Aggregate):
    """An order: placed, then confirmed or rejected, then paid, shipped or cancelled.

    State is kept in JSON-shaped attributes (plain str, list, Decimal) so that the
    default snapshot round-trips; the properties present immutable views of it.
    The ``*_at`` times are the timestamps of the events that set them.
    """

    class Placed(Aggregate.Created):
        cart_id: UUID
        customer_id: str
        lines: list[Line]
        total: Decimal
        # None in events stored before checkouts took delivery details.
        delivery: DeliveryDetails | None = None

    class Confirmed(Aggregate.Event):
        payment_due_at: datetime | None

    class Rejected(Aggregate.Event):
        short_skus: list[str]
        reason: str

    class Paid(Aggregate.Event):
        amount: Decimal

    class Shipped(Aggregate.Event):
        pass

    class Cancelled(Aggregate.Event):
        reason: str

    # -- creation ------------------------------------------------------------

    @staticmethod
    def create_id(cart_id: UUID) -> UUID:
        return order_id_for_cart(cart_id)

    @classmethod
    def place(
        cls,
        cart_id: UUID,
        customer_id: str,
        lines: Sequence[Line],
        total: Decimal,
        delivery: DeliveryDetails | None = None,
    ) -> Order:
        """Places the order for a checked-out cart; its id derives from the cart's."""
        cart_id = parse_id(cart_id, "cart_id")
        # The cart's customer id, judged when the cart was opened.
        customer_id = parse_text(customer_id, "customer_id", stored=True)
        clean_lines = _parse_lines(lines)
        expected = total_of(clean_lines)
        if not isinstance(total, Decimal) or total != expected:
            raise InvalidInputError(
                "total", total, f"must equal the sum of the lines, {expected}"
            )
        if delivery is not None and (
            not isinstance(delivery, DeliveryDetails)
            or delivery.customer_id != customer_id
        ):
            # A forgotten customer's marker is accepted: a cart checked out
            # before the forget still becomes its order.
            raise InvalidInputError(
                "delivery", delivery, f"must be the details of {customer_id!r}"
            )
        return cls(
            cart_id=cart_id,
            customer_id=customer_id,
            lines=clean_lines,
            total=expected,
            delivery=delivery,
        )

    @event(Placed)
    def __init__(
        self,
        cart_id: UUID,
        customer_id: str,
        lines: list[Line],
        total: Decimal,
        delivery: DeliveryDetails | None = None,
    ) -> None:
        self._cart_id = cart_id
        self._customer_id = customer_id
        self._delivery = delivery
        self._lines = list(lines)
        self._total = total
        self._status: str = OrderStatus.PLACED
        self._short_skus: list[str] = []
        self._rejection_reason: str | None = None
        self._cancellation_reason: str | None = None
        self._confirmed_at: datetime | None = None
        self._payment_due_at: datetime | None = None
        self._rejected_at: datetime | None = None
        self._paid_at: datetime | None = None
        self._shipped_at: datetime | None = None
        self._cancelled_at: datetime | None = None

    # -- state ---------------------------------------------------------------

    @property
    def cart_id(self) -> UUID:
        return self._cart_id

    @property
    def customer_id(self) -> str:
        return self._customer_id

    @property
    def delivery(self) -> DeliveryDetails | None:
        """Where the order goes; None for orders placed before checkouts took
        delivery details."""
        # getattr: snapshots taken before then have no such attribute.
        return getattr(self, "_delivery", None)

    @property
    def lines(self) -> tuple[Line, ...]:
        return tuple(self._lines)

    @property
    def total(self) -> Decimal:
        return self._total

    @property
    def status(self) -> OrderStatus:
        # A snapshot decodes the stored member as a plain str.
        return OrderStatus(self._status)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def short_skus(self) -> tuple[str, ...]:
        return tuple(self._short_skus)

    @property
    def rejection_reason(self) -> str | None:
        return self._rejection_reason

    @property
    def cancellation_reason(self) -> str | None:
        return self._cancellation_reason

    @property
    def placed_at(self) -> datetime:
        return self.created_on

    @property
    def payment_due_at(self) -> datetime | None:
        return self._payment_due_at

    @property
    def confirmed_at(self) -> datetime | None:
        return self._confirmed_at

    @property
    def rejected_at(self) -> datetime | None:
        return self._rejected_at

    @property
    def paid_at(self) -> datetime | None:
        return self._paid_at

    @property
    def shipped_at(self) -> datetime | None:
        return self._shipped_at

    @property
    def cancelled_at(self) -> datetime | None:
        return self._cancelled_at

    # -- commands ------------------------------------------------------------

    def confirm(self, payment_due_at: datetime | None = None) -> None:
        """All lines are reserved: the order can be paid, by ``payment_due_at``
        if given (after which it may be cancelled for want of payment)."""
        self._check_status("confirm", OrderStatus.PLACED)
        self._confirm(payment_due_at=payment_due_at)

    def reject(self, short_skus: Sequence[str], reason: str) -> None:
        """Some lines could not be reserved: the order ends here."""
        self._check_status("reject", OrderStatus.PLACED)
        if isinstance(short_skus, str):
            # A str is a Sequence[str]; "AB" must not become ["A", "B"].
            raise InvalidInputError(
                "short_skus", short_skus, "must be a sequence of SKUs, not a string"
            )
        skus = sorted({parse_sku(sku) for sku in short_skus})
        self._reject(short_skus=skus, reason=parse_text(reason, "reason"))

    def pay(self) -> None:
        self._check_status("pay", OrderStatus.CONFIRMED)
        self._pay(amount=self._total)

    def ship(self) -> None:
        self._check_status("ship", OrderStatus.PAID)
        self._ship()

    def cancel(self, reason: str) -> None:
        self._check_status("cancel", OrderStatus.CONFIRMED, OrderStatus.PAID)
        self._cancel(reason=parse_text(reason, "reason"))

    def cancel_unpaid(self, now: datetime) -> None:
        """Cancels a confirmed order whose payment deadline has passed at ``now``;
        an order already paid (or settled otherwise) is refused, not cancelled."""
        now = parse_moment(now, "now")
        self._check_status("cancel_unpaid", OrderStatus.CONFIRMED)
        due = self._payment_due_at
        if due is None or now < due:
            raise PaymentNotOverdueError(self.id, due, now)
        self._cancel(reason=f"{PAYMENT_NOT_RECEIVED} by {due.isoformat()}")

    def _check_status(self, command: str, *allowed: OrderStatus) -> None:
        if self.status not in allowed:
            raise OrderStateError(self.id, self.status.value, command)

    # -- events applied (no rules here: they also run on replay) -------------
    # ``timestamp`` is filled from the event itself, both when it is triggered
    # and when it is replayed, so the ``*_at`` times survive reconstruction.

    @event(Confirmed)
    def _confirm(
        self, payment_due_at: datetime | None, timestamp: datetime | None = None
    ) -> None:
        self._status = OrderStatus.CONFIRMED
        self._confirmed_at = timestamp
        self._payment_due_at = payment_due_at

    @event(Rejected)
    def _reject(
        self, short_skus: list[str], reason: str, timestamp: datetime | None = None
    ) -> None:
        self._status = OrderStatus.REJECTED
        self._short_skus = list(short_skus)
        self._rejection_reason = reason
        self._rejected_at = timestamp

    @event(Paid)
    def _pay(self, amount: Decimal, timestamp: datetime | None = None) -> None:
        self._status = OrderStatus.PAID
        self._paid_at = timestamp

    @event(Shipped)
    def _ship(self, timestamp: datetime | None = None) -> None:
        self._status = OrderStatus.SHIPPED
        self._shipped_at = timestamp

    @event(Cancelled)
    def _cancel(self, reason: str, timestamp: datetime | None = None) -> None:
        self._status = OrderStatus.CANCELLED
        self._cancellation_reason = reason
        self._cancelled_at = timestamp


def _parse_lines(lines: object) -> list[Line]:
    """Checks every line again: an order may be placed by more than a cart."""
    if isinstance(lines, str) or not isinstance(lines, Sequence):
        raise InvalidInputError("lines", lines, "must be a sequence of lines")
    if not lines:
        raise InvalidInputError("lines", lines, "an order needs at least one line")
    clean: list[Line] = []
    seen: set[str] = set()
    for line in lines:
        if not isinstance(line, Line):
            raise InvalidInputError("lines", line, "must be a Line")
        sku = parse_sku(line.sku)
        if sku in seen:
            # Inventory keeps one reservation per order and SKU.
            raise InvalidInputError("lines", sku, "the same SKU is on two lines")
        seen.add(sku)
        clean.append(
            Line(
                sku,
                parse_quantity(line.quantity),
                parse_price(line.unit_price, "unit_price"),
            )
        )
    return clean
