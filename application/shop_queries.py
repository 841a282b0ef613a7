"""``ShopQueries``: the read models, for Python callers.

Views are eventually consistent: they show what the subscribers have handled
so far. A caller that must see its own writes calls
``Shop.wait_until_processed()`` first; one that must be strongly consistent
reads the aggregate instead (``Shop.get_cart``, ``get_order``, ``get_stock``).
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from domain.errors import InvalidInputError
from domain.order import OrderStatus
from domain.values import (
    parse_choice,
    parse_id,
    parse_sku,
    parse_text,
    parse_whole_number,
)
from projections.read_models import carts, customer_orders, orders, sales, stock
from projections.read_models.carts import CartSummary
from projections.read_models.customer_orders import CustomerHistory
from projections.read_models.orders import OrderSummary
from projections.read_models.sales import ProductSalesRow
from projections.read_models.stock import StockLevel
from projections.store import ViewStore

MAX_PAGE_SIZE = 500
_STATUSES = tuple(status.value for status in OrderStatus)


class ShopQueries:
    """Parses what callers pass (raising typed ``InvalidInputError`` on
    malformed input) and reads the active generation of each view."""

    def __init__(self, store: ViewStore) -> None:
        self.store = store

    def cart(self, cart_id: UUID | str) -> CartSummary | None:
        return carts.cart_summary(self.store, parse_id(cart_id, "cart_id"))

    def order(self, order_id: UUID | str) -> OrderSummary | None:
        return orders.order_summary(self.store, parse_id(order_id, "order_id"))

    def order_statuses(self, order_ids: Iterable[UUID | str]) -> dict[UUID, str]:
        """The status of each order (at most ``MAX_PAGE_SIZE``) the order view
        holds, by id, read in one query; orders it does not hold yet are left
        out."""
        ids = {parse_id(order_id, "order_id") for order_id in order_ids}
        if len(ids) > MAX_PAGE_SIZE:
            raise InvalidInputError(
                "order_ids", len(ids), f"at most {MAX_PAGE_SIZE} orders at once"
            )
        return orders.order_statuses(self.store, ids)

    def orders(
        self,
        status: str | None = None,
        customer_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[OrderSummary, ...]:
        """Orders newest first; ``status`` is an ``OrderStatus`` value."""
        return orders.orders(
            self.store,
            status=None
            if status is None
            else parse_choice(status, "status", _STATUSES),
            customer_id=None
            if customer_id is None
            else parse_text(customer_id, "customer_id"),
            limit=parse_whole_number(limit, "limit", 1, MAX_PAGE_SIZE),
            offset=parse_whole_number(offset, "offset", 0),
        )

    def customer_history(self, customer_id: str) -> CustomerHistory:
        return customer_orders.customer_history(
            self.store, parse_text(customer_id, "customer_id")
        )

    def stock_levels(self) -> tuple[StockLevel, ...]:
        return stock.stock_levels(self.store)

    def stock_level(self, sku: str) -> StockLevel | None:
        return stock.stock_level(self.store, parse_sku(sku))

    def product_sales(self) -> tuple[ProductSalesRow, ...]:
        return sales.product_sales(self.store)
