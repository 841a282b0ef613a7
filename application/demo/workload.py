"""The demo workload: a busy day of a small shop, then proof that it added up.

Many customers shop at once against limited stock, so some orders are rejected;
once the saga has confirmed an order, its customer pays (and it ships), cancels
it, or never pays, so its payment deadline expires and cancels it. At the end the demo
checks the invariants (stock conserved, every checkout resolved exactly once,
views equal to a rebuild from the log).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

from application.demo.delivery import fake_delivery
from application.demo.invariants import InvariantCheck, check_invariants
from application.demo.limits import MAX_CUSTOMERS, MAX_THREADS
from application.shop import Shop
from domain.errors import (
    InvalidInputError,
    OrderNotFoundError,
    OrderStateError,
    ProductAlreadyRegisteredError,
)
from domain.order import PAYMENT_NOT_RECEIVED, OrderStatus
from domain.values import order_id_for_cart

CATALOGUE: tuple[tuple[str, str, Decimal, int], ...] = (
    ("TEA-EARLGREY", "Earl Grey tea, 100 g", Decimal("4.50"), 60),
    ("TEA-SENCHA", "Sencha green tea, 100 g", Decimal("6.20"), 40),
    ("MUG-STONE", "Stoneware mug", Decimal("12.00"), 20),
    ("POT-CAST", "Cast-iron teapot", Decimal("39.90"), 6),
    ("STRAINER", "Steel tea strainer", Decimal("3.75"), 30),
    ("HONEY-500", "Wildflower honey, 500 g", Decimal("8.40"), 15),
)
SKUS = tuple(sku for sku, *_ in CATALOGUE)

# Short, so that the demo sees an unpaid order expire within its run; customers
# pay as soon as the saga has confirmed their order, so however large the run,
# only the orders left unpaid expire.
DEMO_PAYMENT_TIMEOUT = timedelta(seconds=3)
# How long a customer waits for the saga to decide on their order.
DECISION_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Visit:
    """What one customer did: the cart checked out (None if abandoned), the
    commands issued, and what became of a confirmed order."""

    cart_id: UUID | None
    commands: int
    outcome: str | None


class PaymentDesk:
    """Picks the first confirmed order of a run to be left unpaid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._picked = False

    def leave_first_unpaid(self) -> bool:
        with self._lock:
            first, self._picked = not self._picked, True
            return first


@dataclass
class DemoReport:
    customers: int
    checked_out: list[UUID] = field(default_factory=list)
    abandoned: int = 0
    commands: int = 0
    left_unpaid: list[UUID] = field(default_factory=list)
    orders_by_outcome: Counter[str] = field(default_factory=Counter)
    events_stored: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    shopping_commands: int = 0
    shopping_seconds: float = 0.0
    invariants: list[InvariantCheck] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def expired(self) -> int:
        return self.orders_by_outcome.get("expired", 0)

    @property
    def ok(self) -> bool:
        return not self.errors and all(check.ok for check in self.invariants)


def stock_up(shop: Shop) -> int:
    """Registers the catalogue (once per store) and receives a delivery."""
    commands = 0
    for sku, name, price, delivery in CATALOGUE:
        with contextlib.suppress(ProductAlreadyRegisteredError):
            shop.register_product(sku, name, price)
        shop.receive_stock(sku, delivery)
        commands += 2
    return commands


def visit(shop: Shop, customer_id: str, rng: random.Random, desk: PaymentDesk) -> Visit:
    """One customer fills a cart, may change their mind, and checks out (or
    walks away); once the saga has decided on their order, they pay (and it
    ships), cancel or never pay, as a customer would: soon after it is
    confirmed, however many others are shopping meanwhile."""
    cart_id = shop.open_cart(customer_id)
    commands = 1
    picks = rng.sample(SKUS, k=rng.randint(1, 3))
    for sku in picks:
        shop.add_to_cart(cart_id, sku, rng.randint(1, 4))
        commands += 1
    if len(picks) > 1 and rng.random() < 0.2:
        shop.remove_from_cart(cart_id, picks[-1])
        commands += 1
    if rng.random() < 0.2:
        shop.change_quantity(cart_id, picks[0], rng.randint(1, 5))
        commands += 1
    if rng.random() < 0.08:
        shop.abandon_cart(cart_id)
        return Visit(None, commands + 1, None)
    order_id = shop.checkout(cart_id, **fake_delivery(customer_id))
    commands += 1
    if await_decision(shop, order_id) != OrderStatus.CONFIRMED:
        return Visit(cart_id, commands, None)
    # At least one order is left unpaid, so a deadline expires every run.
    outcome = "unpaid" if desk.leave_first_unpaid() else None
    try:
        outcome, settling = settle(shop, order_id, rng, outcome)
    except OrderStateError:
        # Its payment deadline fired first: that is the point of deadlines.
        outcome, settling = "too late", 1
    return Visit(cart_id, commands + settling, outcome)


def await_decision(
    shop: Shop, order_id: UUID, timeout: float = DECISION_TIMEOUT_SECONDS
) -> str:
    """The order's status once the saga has confirmed or rejected it."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        with contextlib.suppress(OrderNotFoundError):
            status = shop.get_order(order_id).status
            if status != OrderStatus.PLACED:
                return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"order {order_id} undecided after {timeout} s")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def settle(
    shop: Shop, order_id: UUID, rng: random.Random, outcome: str | None = None
) -> tuple[str, int]:
    """What happens to a confirmed order (``outcome``, or one drawn at
    random): shipped, paid, cancelled or unpaid. Returns it and the commands
    issued."""
    if outcome is None:
        roll = rng.random()
        outcome = (
            "shipped"
            if roll < 0.55
            else "paid"
            if roll < 0.75
            else "cancelled"
            if roll < 0.9
            else "unpaid"
        )
    if outcome == "shipped":
        shop.pay_order(order_id)
        shop.ship_order(order_id)
        return outcome, 2
    if outcome == "paid":
        shop.pay_order(order_id)
        return outcome, 1
    if outcome == "cancelled":
        shop.cancel_order(order_id, "customer changed their mind")
        return outcome, 1
    return outcome, 0


def check_workload(customers: int, threads: int) -> None:
    """Refuses a workload the demo cannot run, before anything is written."""
    if not 1 <= customers <= MAX_CUSTOMERS:
        raise InvalidInputError("customers", customers, f"must be 1-{MAX_CUSTOMERS}")
    if not 1 <= threads <= MAX_THREADS:
        raise InvalidInputError("threads", threads, f"must be 1-{MAX_THREADS}")


def run_demo(
    shop: Shop,
    *,
    customers: int = 60,
    threads: int = 4,
    seed: int | None = None,
    on_progress: Callable[[], None] = lambda: None,
    verify_views: bool = True,
) -> DemoReport:
    """Runs the workload on ``shop`` (whose subscribers must be running, here
    or in workers) and returns what happened, invariants included (over the
    whole store, earlier runs included)."""
    check_workload(customers, threads)
    started = time.perf_counter()
    heads_before = shop.log_heads()
    report = DemoReport(customers=customers)
    report.commands += stock_up(shop)
    run_id = uuid.uuid4().hex[:6]
    base_seed = random.randrange(2**32) if seed is None else seed
    desk = PaymentDesk()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        visits = [
            pool.submit(
                visit,
                shop,
                f"customer-{run_id}-{n:03d}",
                random.Random(base_seed + n),
                desk,
            )
            for n in range(customers)
        ]
        for future in as_completed(visits):
            try:
                done = future.result()
            except Exception as error:  # reported below; the demo then fails
                report.errors.append(f"{type(error).__name__}: {error}")
            else:
                _count(report, done)
            on_progress()
    shop.wait_until_processed(timeout=120)
    report.shopping_commands = report.commands
    report.shopping_seconds = time.perf_counter() - started
    _wait_for_deadlines(shop, report.left_unpaid)

    for cart_id in report.checked_out:
        order = shop.get_order(order_id_for_cart(cart_id))
        expired = order.status == "cancelled" and (
            order.cancellation_reason or ""
        ).startswith(PAYMENT_NOT_RECEIVED)
        report.orders_by_outcome["expired" if expired else order.status] += 1
    heads_after = shop.log_heads()
    report.events_stored = {
        name: heads_after[name] - heads_before.get(name, 0) for name in heads_after
    }
    report.seconds = time.perf_counter() - started
    report.invariants = check_invariants(shop, compare_views=verify_views)
    return report


def _count(report: DemoReport, done: Visit) -> None:
    report.commands += done.commands
    if done.cart_id is None:
        report.abandoned += 1
        return
    report.checked_out.append(done.cart_id)
    if done.outcome == "unpaid":
        report.left_unpaid.append(order_id_for_cart(done.cart_id))


def _wait_for_deadlines(shop: Shop, unpaid: list[UUID]) -> None:
    """Waits (bounded) until every unpaid order's deadline has fired."""
    timeout = shop.settings.payment_timeout.total_seconds() + 30
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shop.wait_until_processed(timeout=60)
        if all(shop.get_order(order).status != "confirmed" for order in unpaid):
            return
        time.sleep(0.2)
