"""Helpers shared by the payment-deadline tests: a clock that tests move by hand,
and confirmed orders to let expire.

Named ``deadline_testing`` because test folders have no ``__init__.py``: every
module basename under ``tests/`` must be unique.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

from application import Settings, Shop
from domain.order import Order
from tests.application.shop_testing import TEA, TEA_NAME, TEA_PRICE

PAYMENT_TIMEOUT = timedelta(minutes=30)
PAST_DUE = PAYMENT_TIMEOUT + timedelta(minutes=10)
"""How far to move a clock read before checkout for its deadlines to have passed."""

TEA_IN_STOCK = 50

# Longer than any test: the shop's own ticker never fires behind a test's back.
NEVER = 3600.0


class FakeClock:
    """Stands still until a test moves it."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


def deadline_settings(settings: Settings, *, tick_seconds: float = NEVER) -> Settings:
    return replace(
        settings, payment_timeout=PAYMENT_TIMEOUT, deadline_tick_seconds=tick_seconds
    )


def stock_tea(shop: Shop) -> None:
    shop.register_product(TEA, TEA_NAME, TEA_PRICE)
    shop.receive_stock(TEA, TEA_IN_STOCK)


def confirmed_orders(shop: Shop, count: int = 1) -> list[UUID]:
    """Checks out ``count`` carts of 2 x TEA and waits for the saga to confirm
    their orders (each with a payment deadline)."""
    order_ids = []
    for number in range(count):
        cart_id = shop.open_cart(f"customer-{number}")
        shop.add_to_cart(cart_id, TEA, 2)
        order_ids.append(shop.checkout(cart_id))
    shop.wait_until_processed()
    assert [shop.get_order(order_id).status for order_id in order_ids] == [
        "confirmed"
    ] * count
    return order_ids


def order_events(shop: Shop, order_id: UUID) -> list[Order.Event]:
    events = []
    for stored in shop.orders.events.get(order_id):
        assert isinstance(stored, Order.Event)
        events.append(stored)
    return events


def cancellations(shop: Shop, order_id: UUID) -> list[Order.Cancelled]:
    return [
        event
        for event in order_events(shop, order_id)
        if isinstance(event, Order.Cancelled)
    ]
