"""Every read model eventshop maintains, in the order they are listed to users."""

from __future__ import annotations

from projections.audit import AUDIT_INDEXES
from projections.base import Projection
from projections.carts import CartSummaries
from projections.customers import CustomerOrderHistory
from projections.deadlines import PaymentDeadlines
from projections.orders import OrderSummaries
from projections.sales import ProductSales
from projections.stock import StockLevels

PROJECTIONS: tuple[type[Projection], ...] = (
    CartSummaries,
    OrderSummaries,
    CustomerOrderHistory,
    StockLevels,
    ProductSales,
    PaymentDeadlines,
    *AUDIT_INDEXES,
)


def projection_named(name: str) -> type[Projection]:
    for projection in PROJECTIONS:
        if projection.name == name:
            return projection
    known = ", ".join(projection.name for projection in PROJECTIONS)
    raise LookupError(f"no projection named {name!r} (known: {known})")
