"""Code run in child processes by the subscriber tests (spawned, so importable)."""

from __future__ import annotations

from multiprocessing.synchronize import Barrier

from application.config import Settings
from application.services import Inventory


def write_stock_events(database_url: str, sku: str, count: int, start: Barrier) -> int:
    """Registers ``sku`` then receives one unit ``count`` times; returns the
    number of events written."""
    settings = Settings.from_url(database_url)
    inventory = Inventory(settings)
    try:
        start.wait()
        inventory.register_product(sku, f"product {sku}", "1.00")
        for _ in range(count):
            inventory.receive_stock(sku, 1)
    finally:
        inventory.close()
    return count + 1


def open_shop(database_url: str, start: Barrier) -> str:
    """Opens a shop (creating every table it needs) at the same moment as the
    other children, and writes one event through it."""
    from application.shop import Shop

    start.wait()
    with Shop(database_url, subscribers="embedded") as shop:
        cart_id = shop.open_cart("startup")
        return str(cart_id)
