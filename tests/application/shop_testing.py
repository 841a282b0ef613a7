"""Helpers shared by the application tests.

Named ``shop_testing`` because test folders have no ``__init__.py``: every module
basename under ``tests/`` must be unique.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from application import Shop
from domain.inventory import InventoryItem
from domain.values import order_id_for_cart

TEA = "TEA-SENCHA"
TEA_NAME = "Sencha green tea, 100 g"
TEA_PRICE = Decimal("6.20")
MUG = "MUG-01"
MUG_PRICE = Decimal("12.50")

A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class World:
    """A shop with something of everything in it, for commands to be refused on.

    Build it on a shop that hosts no subscribers, so that nothing else writes
    while a test compares the stores' positions."""

    shop: Shop
    cart_id: UUID
    """Open, holding 2 x TEA."""
    empty_cart_id: UUID
    checked_out_cart_id: UUID
    order_id: UUID
    """Placed from ``checked_out_cart_id`` and confirmed."""


def build_world(shop: Shop) -> World:
    shop.register_product(TEA, TEA_NAME, TEA_PRICE)
    shop.register_product(MUG, "Stoneware mug", MUG_PRICE)
    shop.receive_stock(TEA, 50)
    shop.receive_stock(MUG, 10)
    cart_id = shop.open_cart("customer-1")
    shop.add_to_cart(cart_id, TEA, 2)
    empty_cart_id = shop.open_cart("customer-2")
    checked_out_cart_id = shop.open_cart("customer-3")
    shop.add_to_cart(checked_out_cart_id, MUG, 1)
    order_id = place_order_of(shop, checked_out_cart_id)
    shop.orders.confirm(order_id)
    return World(shop, cart_id, empty_cart_id, checked_out_cart_id, order_id)


def place_order_of(shop: Shop, cart_id: UUID) -> UUID:
    """Checks a cart out and places its order, as the Carts -> Orders policy will."""
    order_id = shop.checkout(cart_id)
    cart = shop.get_cart(cart_id)
    placed = shop.orders.place_order(
        cart_id, cart.customer_id, list(cart.lines), cart.total
    )
    assert placed == order_id == order_id_for_cart(cart_id)
    return placed


def item_state(item: InventoryItem) -> dict[str, object]:
    """Everything an inventory item holds, for comparing two reconstructions."""
    return {
        "id": item.id,
        "version": item.version,
        "created_on": item.created_on,
        "modified_on": item.modified_on,
        "sku": item.sku,
        "name": item.name,
        "price": item.price,
        "on_hand": item.on_hand,
        "reserved": item.reserved,
        "reservations": dict(item.reservations),
    }
