"""The Carts service: customers fill carts and check them out."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from application.services.aggregate_views import CartView
from application.services.base import ShopService
from domain.cart import Cart
from domain.errors import CartNotFoundError


class Carts(ShopService[Cart, UUID]):
    aggregate_class = Cart

    def aggregate_id(self, key: UUID) -> UUID:
        return key

    def not_found(self, key: UUID) -> CartNotFoundError:
        return CartNotFoundError(key)

    def open_cart(self, customer_id: str) -> UUID:
        cart = Cart.open(customer_id)
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

    def check_out(self, cart_id: UUID) -> UUID:
        """Returns the id of the order the cart becomes."""
        cart = self._change(cart_id, Cart.check_out)
        assert cart.order_id is not None
        return cart.order_id

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
