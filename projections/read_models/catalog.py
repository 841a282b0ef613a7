"""Every read model eventshop maintains, in the order they are listed to users."""

from __future__ import annotations

from projections.audit.indexes import AUDIT_INDEXES
from projections.read_model import ReadModel
from projections.read_models.carts import CartSummaries
from projections.read_models.customer_orders import CustomerOrderHistory
from projections.read_models.orders import OrderSummaries
from projections.read_models.payment_deadlines import PaymentDeadlines
from projections.read_models.sales import ProductSales
from projections.read_models.stock import StockLevels

READ_MODELS: tuple[type[ReadModel], ...] = (
    CartSummaries,
    OrderSummaries,
    CustomerOrderHistory,
    StockLevels,
    ProductSales,
    PaymentDeadlines,
    *AUDIT_INDEXES,
)


def read_model_named(name: str) -> type[ReadModel]:
    for projection in READ_MODELS:
        if projection.name == name:
            return projection
    known = ", ".join(projection.name for projection in READ_MODELS)
    raise LookupError(f"no projection named {name!r} (known: {known})")
