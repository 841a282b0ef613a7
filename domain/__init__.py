"""The pure domain of eventshop: aggregates, their events, values and errors."""

from __future__ import annotations

from domain.cart import Cart, CartStatus
from domain.errors import (
    CartClosedError,
    CartNotFoundError,
    ConcurrencyConflictError,
    EmptyCartError,
    InsufficientStockError,
    InvalidIdError,
    InvalidInputError,
    InvalidPriceError,
    InvalidQuantityError,
    InvalidSkuError,
    InvalidTextError,
    ItemNotInCartError,
    NotFoundError,
    OrderNotFoundError,
    OrderStateError,
    OutOfStockError,
    PaymentNotOverdueError,
    ProductAlreadyRegisteredError,
    ProductNotFoundError,
    ReservationNotFoundError,
    ShopError,
    StateError,
    StockBelowReservedError,
)
from domain.inventory import InventoryItem
from domain.order import Order, OrderStatus
from domain.values import Line, inventory_item_id, order_id_for_cart, total_of

__all__ = [
    "Cart",
    "CartClosedError",
    "CartNotFoundError",
    "CartStatus",
    "ConcurrencyConflictError",
    "EmptyCartError",
    "InsufficientStockError",
    "InvalidIdError",
    "InvalidInputError",
    "InvalidPriceError",
    "InvalidQuantityError",
    "InvalidSkuError",
    "InvalidTextError",
    "InventoryItem",
    "ItemNotInCartError",
    "Line",
    "NotFoundError",
    "Order",
    "OrderNotFoundError",
    "OrderStateError",
    "OrderStatus",
    "OutOfStockError",
    "PaymentNotOverdueError",
    "ProductAlreadyRegisteredError",
    "ProductNotFoundError",
    "ReservationNotFoundError",
    "ShopError",
    "StateError",
    "StockBelowReservedError",
    "inventory_item_id",
    "order_id_for_cart",
    "total_of",
]
