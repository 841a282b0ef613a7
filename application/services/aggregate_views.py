"""Immutable views that services return to callers instead of aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from domain.values import DeliveryDetails, Line


@dataclass(frozen=True)
class CartView:
    cart_id: UUID
    customer_id: str
    status: str
    lines: tuple[Line, ...]
    total: Decimal
    order_id: UUID | None
    version: int
    modified_at: datetime


@dataclass(frozen=True)
class OrderView:
    order_id: UUID
    cart_id: UUID
    customer_id: str
    status: str
    lines: tuple[Line, ...]
    total: Decimal
    short_skus: tuple[str, ...]
    rejection_reason: str | None
    cancellation_reason: str | None
    delivery: DeliveryDetails | None
    """None for orders placed before checkouts took delivery details."""
    placed_at: datetime
    modified_at: datetime
    version: int


@dataclass(frozen=True)
class StockView:
    sku: str
    name: str
    price: Decimal
    on_hand: int
    reserved: int
    available: int
    version: int
