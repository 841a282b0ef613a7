"""Every read model eventshop maintains, in the order they are listed to users."""

from __future__ import annotations

from projections.audit.indexes import AUDIT_INDEXES
from projections.read_model import Projection
from projections.read_models.carts import CartSummaries
from projections.read_models.customer_orders import CustomerOrderHistory
from projections.read_models.orders import OrderSummaries
from projections.read_models.payment_deadlines import PaymentDeadlines
from projections.read_models.sales import ProductSales
from projections.read_models.stock import StockLevels

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
