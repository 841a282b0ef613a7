"""The customers of the benchmarks: a catalogue, and client processes that
shop through the real ``Shop`` (``subscribers="workers"``: they only write),
so that the saga and the read models downstream see a realistic log.

Carts take one to three products, some change their mind (a line removed, a
quantity changed), a few are abandoned; two products are scarce, so some
orders are rejected by the saga. After the saga, ``act_on_orders`` pays,
ships and cancels a share of the confirmed orders.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from uuid import UUID

from application.demo.delivery import fake_delivery
from application.shop import Shop
from bench.processes import StartSignal

PLENTIFUL = tuple(f"BENCH-{number:02d}" for number in range(20))
SCARCE = ("BENCH-RARE-1", "BENCH-RARE-2")
SKUS = PLENTIFUL + SCARCE
SETTLED_STATUSES = frozenset({"confirmed", "rejected"})


def stock_up(shop: Shop, checkouts: int) -> None:
    """Registers the catalogue and receives stock: enough of the plentiful
    products for every order, of the scarce ones for about half of those
    that want them (a checkout picks a scarce product one time in eight)."""
    for number, sku in enumerate(SKUS):
        shop.register_product(sku, f"benchmark product {sku}", f"{3 + number}.50")
    for sku in PLENTIFUL:
        shop.receive_stock(sku, min(10 * checkouts + 100, 1_000_000))
    for sku in SCARCE:
        shop.receive_stock(sku, max(1, checkouts // 16))


def _picks(rng: random.Random) -> list[str]:
    picks = rng.sample(PLENTIFUL, k=rng.randint(1, 3))
    if rng.random() < 1 / 8:
        picks[0] = rng.choice(SCARCE)
    return picks


def fill_cart(shop: Shop, customer: str, rng: random.Random) -> tuple[UUID, int]:
    """Opens a cart and fills it; returns it and the commands issued."""
    cart = shop.open_cart(customer)
    picks = _picks(rng)
    for sku in picks:
        shop.add_to_cart(cart, sku, rng.randint(1, 3))
    commands = 1 + len(picks)
    if len(picks) > 1 and rng.random() < 0.15:
        shop.remove_from_cart(cart, picks[-1])
        commands += 1
    if rng.random() < 0.15:
        shop.change_quantity(cart, picks[0], rng.randint(1, 4))
        commands += 1
    return cart, commands


@dataclass
class ClientReport:
    """What one client process did, timed from the common start."""

    started: float = 0.0
    finished: float = 0.0
    commands: int = 0
    order_ids: list[str] = field(default_factory=list)
    cart_ids: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)


def write_checkouts(
    database_url: str,
    client: int,
    checkouts: int,
    abandon_share: float,
    with_delivery: bool = True,
    *,
    start: StartSignal,
) -> ClientReport:
    """Checks ``checkouts`` carts out (and abandons a share of others), with
    made-up delivery details unless told not to."""
    rng = random.Random(1000 + client)
    report = ClientReport()
    with Shop(database_url=database_url, subscribers="workers") as shop:
        start()
        report.started = time.monotonic()
        visit = 0
        while len(report.order_ids) < checkouts:
            visit += 1
            customer = f"customer-{client}-{visit % 400}"
            cart, commands = fill_cart(shop, customer, rng)
            report.commands += commands + 1
            if rng.random() < abandon_share:
                shop.abandon_cart(cart)
                report.outcomes["abandoned"] += 1
            else:
                order = (
                    shop.checkout(cart, **fake_delivery(customer))
                    if with_delivery
                    else shop.checkout(cart)
                )
                report.order_ids.append(str(order))
        report.finished = time.monotonic()
    return report


def fill_carts(
    database_url: str, client: int, carts: int, *, start: StartSignal
) -> ClientReport:
    """Opens and fills ``carts`` carts, ready to be checked out later."""
    rng = random.Random(2000 + client)
    report = ClientReport()
    with Shop(database_url=database_url, subscribers="workers") as shop:
        start()
        report.started = time.monotonic()
        for number in range(carts):
            cart, commands = fill_cart(shop, f"waiting-{client}-{number}", rng)
            report.cart_ids.append(str(cart))
            report.commands += commands
        report.finished = time.monotonic()
    return report


def act_on_orders(
    database_url: str, client: int, order_ids: list[str], *, start: StartSignal
) -> ClientReport:
    """What customers do with confirmed orders: most pay, most of those are
    shipped, some cancel, some do nothing yet. Rejected orders are left."""
    rng = random.Random(3000 + client)
    report = ClientReport()
    with Shop(database_url=database_url, subscribers="workers") as shop:
        start()
        report.started = time.monotonic()
        for order in order_ids:
            status = shop.get_order(order).status
            if status != "confirmed":
                report.outcomes[status] += 1
                continue
            roll = rng.random()
            if roll < 0.55:
                shop.pay_order(order)
                shop.ship_order(order)
                report.commands += 1
                report.outcomes["shipped"] += 1
            elif roll < 0.75:
                shop.pay_order(order)
                report.outcomes["paid"] += 1
            elif roll < 0.9:
                shop.cancel_order(order, "changed my mind")
                report.outcomes["cancelled"] += 1
            else:
                report.outcomes["confirmed"] += 1
            report.commands += 1
        report.finished = time.monotonic()
    return report


def span(reports: list[ClientReport]) -> float:
    """Seconds from the first client's start to the last client's end."""
    return max(r.finished for r in reports) - min(r.started for r in reports)


def split(items: list[str], parts: int) -> list[list[str]]:
    return [items[part::parts] for part in range(parts)]
