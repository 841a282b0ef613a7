"""The pure domain of eventshop: aggregates, their events, values and errors.

The names below are imported when first asked for (PEP 562), as the
application's face does: importing one of the package's modules
(``domain.values``, say) must not load every aggregate with it. ``from domain
import Cart`` still works for every name in ``__all__``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
    from domain.values import (
        Line,
        inventory_item_id,
        order_id_for_cart,
        total_of,
    )

# Which module holds each name: the one table ``__getattr__`` reads.
_MODULE_OF: dict[str, str] = {
    "Cart": "domain.cart",
    "CartStatus": "domain.cart",
    "CartClosedError": "domain.errors",
    "CartNotFoundError": "domain.errors",
    "ConcurrencyConflictError": "domain.errors",
    "EmptyCartError": "domain.errors",
    "InsufficientStockError": "domain.errors",
    "InvalidIdError": "domain.errors",
    "InvalidInputError": "domain.errors",
    "InvalidPriceError": "domain.errors",
    "InvalidQuantityError": "domain.errors",
    "InvalidSkuError": "domain.errors",
    "InvalidTextError": "domain.errors",
    "ItemNotInCartError": "domain.errors",
    "NotFoundError": "domain.errors",
    "OrderNotFoundError": "domain.errors",
    "OrderStateError": "domain.errors",
    "OutOfStockError": "domain.errors",
    "PaymentNotOverdueError": "domain.errors",
    "ProductAlreadyRegisteredError": "domain.errors",
    "ProductNotFoundError": "domain.errors",
    "ReservationNotFoundError": "domain.errors",
    "ShopError": "domain.errors",
    "StateError": "domain.errors",
    "StockBelowReservedError": "domain.errors",
    "InventoryItem": "domain.inventory",
    "Order": "domain.order",
    "OrderStatus": "domain.order",
    "Line": "domain.values",
    "inventory_item_id": "domain.values",
    "order_id_for_cart": "domain.values",
    "total_of": "domain.values",
}

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


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    # Kept in the package's namespace: the next look-up finds it directly.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
