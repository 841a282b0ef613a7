"""The Orders service: orders placed from checked-out carts, and their lifecycle."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import suppress
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from eventsourcing.persistence import RecordConflictError

from application.services.aggregate_views import OrderView
from application.services.batch import Batch, LoadedSoFar, needs
from application.services.process import ProcessService
from domain.allocation import Allocation
from domain.cart import Cart
from domain.customer import CustomerErasure
from domain.errors import OrderNotFoundError
from domain.order import Order, OrderStatus
from domain.values import DeliveryDetails, Line, order_id_for_cart
from projections.read_model import handles


def _order_of_cart(checked_out: Cart.CheckedOut, _: LoadedSoFar) -> Iterator[UUID]:
    yield order_id_for_cart(checked_out.originator_id)


def _order_of_allocation(
    answer: Allocation.Reserved | Allocation.Refused, _: LoadedSoFar
) -> Iterator[UUID]:
    yield answer.order_id


class Orders(ProcessService[Order, UUID]):
    """Orders, placed when a cart is checked out and confirmed or rejected when
    Inventory has answered."""

    aggregate_class = Order

    def aggregate_id(self, key: UUID) -> UUID:
        return key

    def not_found(self, key: UUID) -> OrderNotFoundError:
        return OrderNotFoundError(key)

    def place_order(
        self,
        cart_id: UUID,
        customer_id: str,
        lines: Sequence[Line],
        total: Decimal,
        delivery: DeliveryDetails | None = None,
    ) -> UUID:
        """Places the order of a checked-out cart; placing it again changes nothing
        (its id derives from the cart's, so a retry finds the first one)."""
        order = Order.place(cart_id, customer_id, lines, total, delivery)
        self._add(order)
        return order_id_for_cart(cart_id)

    def forget_customer(self, customer_id: str) -> None:
        """Records that the customer is forgotten, then deletes their key.
        Again is harmless, and completes a forget that stopped in between."""
        # Recorded before, the key may still have to go.
        with suppress(RecordConflictError):
            self.save(CustomerErasure.forget(customer_id))
        self.keys().forget(customer_id)

    def confirm(self, order_id: UUID) -> None:
        self._change(order_id, Order.confirm)

    def reject(self, order_id: UUID, short_skus: Sequence[str], reason: str) -> None:
        self._change(order_id, lambda order: order.reject(short_skus, reason))

    def pay(self, order_id: UUID) -> None:
        self._change(order_id, Order.pay)

    def ship(self, order_id: UUID) -> None:
        self._change(order_id, Order.ship)

    def cancel(self, order_id: UUID, reason: str) -> None:
        self._change(order_id, lambda order: order.cancel(reason))

    def cancel_unpaid(self, order_id: UUID, now: datetime) -> None:
        """Cancels the order if it is still unpaid after its payment deadline;
        raises a ``StateError`` if it is not (paid, cancelled, not yet due)."""
        self._change(order_id, lambda order: order.cancel_unpaid(now))

    def get_order(self, order_id: UUID) -> OrderView:
        order = self._load(order_id)
        return OrderView(
            order_id=order.id,
            cart_id=order.cart_id,
            customer_id=order.customer_id,
            status=str(order.status),
            lines=tuple(order.lines),
            total=order.total,
            short_skus=tuple(order.short_skus),
            rejection_reason=order.rejection_reason,
            cancellation_reason=order.cancellation_reason,
            delivery=order.delivery,
            placed_at=order.created_on,
            modified_at=order.modified_on,
            version=order.version,
        )

    # -- reactions -----------------------------------------------------------

    @handles(Cart.CheckedOut)
    @needs(_order_of_cart)
    def _place_checked_out_cart(self, event: Cart.CheckedOut, batch: Batch) -> None:
        if batch.load(order_id_for_cart(event.originator_id), Order) is not None:
            return
        batch.record(
            Order.place(
                event.originator_id,
                event.customer_id,
                event.lines,
                event.total,
                event.delivery,
            )
        )

    @handles(Allocation.Reserved)
    @needs(_order_of_allocation)
    def _confirm_reserved_order(self, event: Allocation.Reserved, batch: Batch) -> None:
        order = batch.load(event.order_id, Order)
        if order is None or order.status != OrderStatus.PLACED:
            return
        # Due from when stock was reserved (the event's time, not the clock's),
        # so replaying the same history decides the same deadline.
        order.confirm(payment_due_at=event.timestamp + self.settings.payment_timeout)
        batch.record(order)

    @handles(Allocation.Refused)
    @needs(_order_of_allocation)
    def _reject_refused_order(self, event: Allocation.Refused, batch: Batch) -> None:
        order = batch.load(event.order_id, Order)
        if order is None or order.status != OrderStatus.PLACED:
            return
        order.reject(event.short_skus, event.reason)
        batch.record(order)
