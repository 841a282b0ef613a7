"""The Carts service: customers fill carts and check them out."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from application.services.aggregate_views import CartView
from application.services.base import ShopService
from domain.cart import Cart
from domain.errors import CartNotFoundError, CustomerForgottenError
from domain.values import parse_delivery_details


@dataclass(frozen=True)
class Recipient:
    """Where a checkout's order goes, as the caller gave it (checked when the
    cart, and so the customer, is known)."""

    name: object
    email: object
    address: object


class Carts(ShopService[Cart, UUID]):
    aggregate_class = Cart

    def aggregate_id(self, key: UUID) -> UUID:
        return key

    def not_found(self, key: UUID) -> CartNotFoundError:
        return CartNotFoundError(key)

    def open_cart(self, customer_id: str) -> UUID:
        cart = Cart.open(customer_id)
        if self.keys().is_forgotten(cart.customer_id):
            raise CustomerForgottenError(cart.customer_id)
        self.save(cart)
        return cart.id

    def add_item(
        self, cart_id: UUID, sku: str, quantity: int, unit_price: Decimal
    ) -> None:
        self._change(cart_id, lambda cart: cart.add_item(sku, quantity, unit_price))

    def change_quantity(self, cart_id: UUID, sku: str, quantity: int) -> None:
        self._change(cart_id, lambda cart: cart.change_quantity(sku, quantity))

    def remove_item(self, cart_id: UUID, sku: str) -> None:
        self._change(cart_id, lambda cart: cart.remove_item(sku))

    def check_out(self, cart_id: UUID, recipient: Recipient | None = None) -> UUID:
        """Returns the id of the order the cart becomes. The customer's key
        is made (if new) before the cart's event is saved, so the event can be
        sealed with it; a forgotten customer is refused, and nothing written."""
        cart = self._change(cart_id, lambda cart: self._check_out(cart, recipient))
        assert cart.order_id is not None
        return cart.order_id

    def _check_out(self, cart: Cart, recipient: Recipient | None) -> None:
        if recipient is None:
            if self.keys().is_forgotten(cart.customer_id):
                raise CustomerForgottenError(cart.customer_id)
            cart.check_out()
            return
        delivery = parse_delivery_details(
            cart.customer_id, recipient.name, recipient.email, recipient.address
        )
        cart.check_out(delivery)
        self.keys().ensure_key(cart.customer_id)

    def abandon(self, cart_id: UUID) -> None:
        self._change(cart_id, Cart.abandon)

    def get_cart(self, cart_id: UUID) -> CartView:
        cart = self._load(cart_id)
        return CartView(
            cart_id=cart.id,
            customer_id=cart.customer_id,
            status=str(cart.status),
            lines=tuple(cart.lines),
            total=cart.total,
            order_id=cart.order_id,
            version=cart.version,
            modified_at=cart.modified_on,
        )
