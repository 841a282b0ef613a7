"""What the idempotency race test runs in other processes.

It lives in an importable module (not in a test module) because processes made
with the "spawn" start method import the function they run by name.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from uuid import UUID

from application import Settings, Shop

STOCK_PER_DELIVERY = 5


@dataclass(frozen=True)
class RaceTask:
    database_url: str
    sku: str
    customer_id: str
    racer: int
    keys: int


@dataclass(frozen=True)
class RaceReport:
    racer: int
    carts: list[UUID] = field(default_factory=list)
    orders: list[UUID] = field(default_factory=list)
    crash: str | None = None


def race_with_keys(task: RaceTask, start: Barrier, reports: Queue[RaceReport]) -> None:
    """For each of ``task.keys`` keys, waits for the other racers, then opens a
    cart, adds a unit to it, checks it out and receives a delivery of stock,
    each with a key of its own, as every other racer does at the same moment;
    reports the cart and order ids it was given."""
    carts: list[UUID] = []
    orders: list[UUID] = []
    try:
        with Shop(
            settings=Settings.from_url(task.database_url), subscribers="workers"
        ) as shop:
            for key in range(task.keys):
                start.wait(timeout=60)
                cart = shop.open_cart(task.customer_id, idempotency_key=f"cart-{key}")
                carts.append(cart)
                shop.add_to_cart(cart, task.sku, 1, idempotency_key=f"add-{key}")
                orders.append(shop.checkout(cart, idempotency_key=f"checkout-{key}"))
                shop.receive_stock(
                    task.sku, STOCK_PER_DELIVERY, idempotency_key=f"delivery-{key}"
                )
        reports.put(RaceReport(task.racer, carts, orders))
    except BaseException:
        reports.put(RaceReport(task.racer, carts, orders, traceback.format_exc()))
        raise
