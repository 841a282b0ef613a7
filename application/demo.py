"""The demo workload: a small shop day on the embedded default (or any store).

Registers products, receives stock, lets several customers fill and check out
carts concurrently, then prints what happened and how many events each service
stored.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from decimal import Decimal

from application.shop import Shop
from domain.errors import ProductAlreadyRegisteredError

CATALOGUE: tuple[tuple[str, str, Decimal, int], ...] = (
    ("TEA-EARLGREY", "Earl Grey tea, 100 g", Decimal("4.50"), 120),
    ("TEA-SENCHA", "Sencha green tea, 100 g", Decimal("6.20"), 80),
    ("MUG-STONE", "Stoneware mug", Decimal("12.00"), 40),
    ("POT-CAST", "Cast-iron teapot", Decimal("39.90"), 12),
    ("STRAINER", "Steel tea strainer", Decimal("3.75"), 60),
    ("HONEY-500", "Wildflower honey, 500 g", Decimal("8.40"), 30),
)


@dataclass
class DemoReport:
    customers: int
    checked_out: int = 0
    abandoned: int = 0
    lines_added: int = 0
    cart_value: Decimal = Decimal("0.00")
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def stock_up(shop: Shop) -> None:
    """Registers the catalogue (once per store) and receives a delivery."""
    for sku, name, price, delivery in CATALOGUE:
        with contextlib.suppress(ProductAlreadyRegisteredError):
            shop.register_product(sku, name, price)
        shop.receive_stock(sku, delivery)


def shop_as_customer(shop: Shop, customer_id: str, rng: random.Random) -> DemoReport:
    """One customer's visit: fill a cart, maybe change their mind, check out."""
    report = DemoReport(customers=1)
    cart_id = shop.open_cart(customer_id)
    picks = rng.sample(CATALOGUE, k=rng.randint(1, 4))
    for sku, _name, _price, _delivery in picks:
        shop.add_to_cart(cart_id, sku, rng.randint(1, 3))
        report.lines_added += 1
    if len(picks) > 1 and rng.random() < 0.3:
        shop.remove_from_cart(cart_id, picks[-1][0])
    if rng.random() < 0.3:
        shop.change_quantity(cart_id, picks[0][0], rng.randint(1, 5))
    if rng.random() < 0.1:
        shop.abandon_cart(cart_id)
        report.abandoned = 1
        return report
    shop.checkout(cart_id)
    report.checked_out = 1
    report.cart_value = shop.get_cart(cart_id).total
    return report


def run_demo(
    shop: Shop,
    *,
    customers: int = 40,
    workers: int = 4,
    seed: int | None = None,
    on_progress: Callable[[], None] = lambda: None,
) -> DemoReport:
    """Runs the workload and returns what happened."""
    started = time.perf_counter()
    stock_up(shop)
    run_id = uuid.uuid4().hex[:6]
    base_seed = random.randrange(2**32) if seed is None else seed
    total = DemoReport(customers=customers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(
                shop_as_customer,
                shop,
                f"customer-{run_id}-{number:03d}",
                random.Random(base_seed + number),
            )
            for number in range(customers)
        ]
        for future in as_completed(futures):
            try:
                visit = future.result()
            except Exception as error:  # reported below; the demo then fails
                total.errors.append(f"{type(error).__name__}: {error}")
            else:
                total.checked_out += visit.checked_out
                total.abandoned += visit.abandoned
                total.lines_added += visit.lines_added
                total.cart_value += visit.cart_value
            on_progress()
    total.seconds = time.perf_counter() - started
    return total
