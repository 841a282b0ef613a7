"""The Orders service: orders placed from checked-out carts, and their lifecycle."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from uuid import UUID

from application.dto import OrderView
from application.services.base import ShopService
from domain.errors import OrderNotFoundError
from domain.order import Order
from domain.values import Line, order_id_for_cart


class Orders(ShopService[Order, UUID]):
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
    ) -> UUID:
        """Places the order of a checked-out cart; placing it again changes nothing
        (its id derives from the cart's, so a retry finds the first one)."""
        order = Order.place(cart_id, customer_id, lines, total)
        self._add(order)
        return order_id_for_cart(cart_id)

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
            placed_at=order.created_on,
            modified_at=order.modified_on,
            version=order.version,
        )
