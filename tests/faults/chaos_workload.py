"""The chaos workload: customers checking out, paying, cancelling and having
orders shipped, while ``eventshop worker`` processes are SIGKILLed and
restarted; then the proof that nothing was lost or doubled.

* :func:`run_client` is one customer-facing client (a thread of the test): it
  checks carts out and, once each order is confirmed, does what the
  customer's plan says (pay, ship, cancel, or leave it unpaid until its
  payment deadline cancels it), recording every command's outcome in a
  :class:`ClientLog` (the model the end state is checked against).
* :class:`Workers` starts, kills and restarts the worker processes, a few
  instances of each group of subscribers, their output to files.
* :class:`ChaosMonkey` kills workers as the workload goes (:class:`KillSchedule`
  spreads the kills over it and holds the clients back if the kills fall
  behind): a third of the kills aimed at the active instance of a subscriber
  that has a standby (measuring how long the standby takes to take over),
  a third at any worker, a third at every instance of a group at once.
* :func:`order_problems` and :func:`stock_problems` compare the store with
  what the clients did.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO
from uuid import UUID

from eventsourcing.utils import get_topic

from application.config import Settings
from application.shop import Shop
from application.subscribers.status import ACTIVE_STATES
from domain.errors import OrderNotFoundError, OrderStateError
from domain.order import PAYMENT_NOT_RECEIVED, Order
from tests.projections.runner_testing import eventually, start_relay, start_worker

SKUS = tuple(f"CHAOS-{number}" for number in range(8))
PRICE = "2.50"
INITIAL_STOCK = 150
# Every RESTOCK_EVERY-th customer of a client first receives a delivery, so
# stock keeps arriving while it is reserved, released and shipped.
RESTOCK_EVERY = 8
RESTOCK_QUANTITY = 24
# Every ABANDON_EVERY-th customer walks away from the cart instead.
ABANDON_EVERY = 20

# How long a client waits for the saga to settle one of its orders, kills
# and takeovers included, before it calls that a hang.
SETTLE_TIMEOUT_SECONDS = 120.0

WORKER_GROUPS: dict[str, tuple[str, ...]] = {
    "sagas": ("checkout", "allocation", "confirmation"),
    "views": ("carts", "orders", "customer_orders", "stock", "sales"),
    "deadlines": ("payment_deadlines",),
    "audit": ("audit_carts", "audit_orders", "audit_inventory"),
}
"""Subscribers hosted together, as an operator would group them."""
INSTANCES = {"sagas": 2, "views": 2, "deadlines": 1, "audit": 1}
"""How many instances of each group run at once: two means an active
instance (per subscriber) and a standby."""
RELAY_GROUP_PREFIX = "relay-"
"""A group named ``relay-<service>`` is that service's ``eventshop relay``."""
AIMED_AT = ("allocation", "checkout", "confirmation", "stock", "orders", "carts")
"""Subscribers with standbys whose active instance the aimed kills hit."""
GROUP_KILL_ORDER = ("sagas", "deadlines", "views", "audit")
"""Whose instances the kills of a whole group hit, in turn."""


class Plan(StrEnum):
    """What a customer does once the order is confirmed."""

    SHIP = "ship"
    PAY = "pay"
    CANCEL = "cancel"
    PAY_THEN_CANCEL = "pay then cancel"
    LEAVE = "leave unpaid"


PLAN_WEIGHTS = {
    Plan.SHIP: 40,
    Plan.PAY: 20,
    Plan.CANCEL: 15,
    Plan.PAY_THEN_CANCEL: 10,
    Plan.LEAVE: 15,
}
EXPIRED = "expired"
"""Cancelled by the payment-deadline ticker (the client's word for it)."""
STATUS_AFTER = {
    Plan.SHIP: "shipped",
    Plan.PAY: "paid",
    Plan.CANCEL: "cancelled",
    Plan.PAY_THEN_CANCEL: "cancelled",
    Plan.LEAVE: EXPIRED,
}
"""The status each plan leaves a confirmed order in, once the payment
deadlines of the orders left unpaid have passed."""
CANCELLATION_REASON = "changed my mind"


@dataclass(frozen=True)
class Checkout:
    """A cart a client checked out, and what became of its order."""

    cart_id: UUID
    order_id: UUID
    lines: dict[str, int]
    plan: Plan
    status: str
    """What the client saw and did: "rejected", the status its plan leads to,
    or "expired" if the payment deadline came first."""


@dataclass
class ClientLog:
    """What clients did: the model the end state is checked against."""

    checkouts: list[Checkout] = field(default_factory=list)
    abandoned: list[UUID] = field(default_factory=list)
    received: Counter[str] = field(default_factory=Counter)


def customers_for(checkouts: int) -> int:
    """How many customers make ``checkouts`` checkouts (the others abandon)."""
    customers = checkouts
    while customers - customers // ABANDON_EVERY < checkouts:
        customers += 1
    return customers


def stock_up(shop: Shop) -> Counter[str]:
    received: Counter[str] = Counter()
    for sku in SKUS:
        shop.register_product(sku, f"chaos {sku}", PRICE)
        shop.receive_stock(sku, INITIAL_STOCK)
        received[sku] += INITIAL_STOCK
    return received


class KillSchedule:
    """Spreads ``kills`` kills evenly over ``checkouts`` checkouts: kill ``i``
    is due once ``(i + 1) / (kills + 1)`` of them are done. Clients may run
    at most ``slack`` checkouts past a kill that is due and not done yet, so
    that a fast workload cannot end before the chaos does."""

    def __init__(self, checkouts: int, kills: int, slack: int = 20) -> None:
        self.due_at = [(i + 1) * checkouts // (kills + 1) for i in range(kills)]
        self.slack = slack
        self.checked_out = 0
        self.kills_done = 0
        self.clients_done = False
        self.aborted = False
        self._changed = threading.Condition()

    def _blocking(self) -> bool:
        if self.aborted or self.kills_done >= len(self.due_at):
            return False
        return self.checked_out >= self.due_at[self.kills_done] + self.slack

    def wait_for_turn(self) -> None:
        """A client's turn for its next checkout."""
        with self._changed:
            self._changed.wait_for(lambda: not self._blocking())

    def one_checked_out(self) -> None:
        with self._changed:
            self.checked_out += 1
            self._changed.notify_all()

    def wait_until_due(self, kill: int) -> None:
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    self.checked_out >= self.due_at[kill]
                    or self.clients_done
                    or self.aborted
                )
            )

    def one_killed(self) -> None:
        with self._changed:
            self.kills_done += 1
            self._changed.notify_all()

    def finish(self, *, aborted: bool = False) -> None:
        with self._changed:
            self.clients_done = True
            self.aborted = self.aborted or aborted
            self._changed.notify_all()


def run_client(
    shop: Shop, client: int, customers: Iterable[int], schedule: KillSchedule
) -> ClientLog:
    """Shops for each customer number, and settles each order as its
    customer's plan says once the saga has confirmed (or rejected) it."""
    rng = random.Random(client)
    record = ClientLog()
    pending: list[tuple[UUID, UUID, dict[str, int], Plan]] = []
    for number in customers:
        schedule.wait_for_turn()
        if number % RESTOCK_EVERY == 0:
            sku = rng.choice(SKUS)
            shop.receive_stock(sku, RESTOCK_QUANTITY, actor="warehouse")
            record.received[sku] += RESTOCK_QUANTITY
        customer = f"chaos-customer-{number}"
        cart_id = shop.open_cart(customer, actor=customer)
        lines = {sku: rng.randint(1, 4) for sku in rng.sample(SKUS, rng.randint(1, 3))}
        for sku, quantity in lines.items():
            shop.add_to_cart(cart_id, sku, quantity, actor=customer)
        if number % ABANDON_EVERY == ABANDON_EVERY - 1:
            shop.abandon_cart(cart_id, actor=customer)
            record.abandoned.append(cart_id)
            continue
        order_id = shop.checkout(cart_id, actor=customer)
        schedule.one_checked_out()
        plan = rng.choices(list(PLAN_WEIGHTS), weights=list(PLAN_WEIGHTS.values()))[0]
        pending.append((cart_id, order_id, lines, plan))
        pending = _settle_ready(shop, pending, record, most=8)
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while pending:
        left = len(pending)
        pending = _settle_ready(shop, pending, record, most=len(pending))
        if len(pending) == left:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"client {client}: {left} orders unsettled after "
                    f"{SETTLE_TIMEOUT_SECONDS}s, e.g. {pending[0][1]}"
                )
            time.sleep(0.05)
        else:
            deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    return record


def _settle_ready(
    shop: Shop,
    pending: list[tuple[UUID, UUID, dict[str, int], Plan]],
    record: ClientLog,
    most: int,
) -> list[tuple[UUID, UUID, dict[str, int], Plan]]:
    """Acts on the orders (of the ``most`` oldest) the saga has decided;
    returns those still undecided."""
    left = []
    for index, entry in enumerate(pending):
        if index >= most:
            left.append(entry)
            continue
        cart_id, order_id, lines, plan = entry
        try:
            status = shop.get_order(order_id).status
        except OrderNotFoundError:
            status = "not placed yet"
        if status == "rejected":
            record.checkouts.append(Checkout(cart_id, order_id, lines, plan, status))
        elif status == "confirmed":
            status = _carry_out(shop, order_id, plan)
            record.checkouts.append(Checkout(cart_id, order_id, lines, plan, status))
        elif status == "cancelled":
            # Its deadline passed before the client saw it confirmed.
            record.checkouts.append(Checkout(cart_id, order_id, lines, plan, EXPIRED))
        else:
            left.append(entry)
    return left


def _carry_out(shop: Shop, order_id: UUID, plan: Plan) -> str:
    """Does what the plan says to a confirmed order; returns the status it
    leads to ("expired" if the payment deadline beat the client to it: the
    ticker cancelled the order before its payment or cancellation)."""
    try:
        if plan in (Plan.SHIP, Plan.PAY, Plan.PAY_THEN_CANCEL):
            shop.pay_order(order_id)
        if plan is Plan.SHIP:
            shop.ship_order(order_id)
        if plan in (Plan.CANCEL, Plan.PAY_THEN_CANCEL):
            shop.cancel_order(order_id, CANCELLATION_REASON)
    except OrderStateError as refused:
        if refused.status != "cancelled":
            raise
        return EXPIRED
    return STATUS_AFTER[plan]


@dataclass
class Worker:
    group: str
    process: subprocess.Popen[bytes]
    output: Path
    killed: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 30) -> str:
        text = self.output.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class Workers:
    """The worker processes of a run: ``INSTANCES[group]`` of each group at
    once, each writing its output to a file of its own under ``folder``."""

    def __init__(
        self,
        settings: Settings,
        folder: Path,
        instances: dict[str, int] = INSTANCES,
    ) -> None:
        self.settings = settings
        self.folder = folder
        self.instances_of = instances
        """How many of each group run at once (a ``relay-<service>`` group
        is that service's relay)."""
        self.started: list[Worker] = []
        self._files: list[IO[bytes]] = []

    def start_all(self) -> None:
        for group, count in self.instances_of.items():
            for _ in range(count):
                self.start(group)

    def start(self, group: str) -> Worker:
        output = self.folder / f"worker-{len(self.started):02d}-{group}.log"
        file = output.open("wb")
        self._files.append(file)
        if group.startswith(RELAY_GROUP_PREFIX):
            service = group.removeprefix(RELAY_GROUP_PREFIX)
            process = start_relay(self.settings, service, output=file)
        else:
            first, *others = WORKER_GROUPS[group]
            process = start_worker(self.settings, first, *others, output=file)
        worker = Worker(group, process, output)
        self.started.append(worker)
        return worker

    def kill_and_replace(self, worker: Worker) -> Worker:
        """SIGKILL, then a new instance of the same group."""
        worker.killed = True
        worker.process.kill()
        worker.process.wait()
        return self.start(worker.group)

    def alive(self) -> list[Worker]:
        return [w for w in self.started if not w.killed and w.process.poll() is None]

    def exited_by_themselves(self) -> list[Worker]:
        return [
            w for w in self.started if not w.killed and w.process.poll() is not None
        ]

    def up(self, shop: Shop) -> list[Worker]:
        """The live workers that have reported the state of a subscriber, and
        the live relays that have said they run (a relay reports on its
        output only: it may not reach the views' database)."""
        reported = {
            report.pid
            for reports in shop.views.reports.all().values()
            for report in reports
        }
        return [
            worker
            for worker in self.alive()
            if worker.pid in reported
            or (
                worker.group.startswith(RELAY_GROUP_PREFIX)
                and f"(pid {worker.pid})" in worker.tail()
            )
        ]

    def instances(self, shop: Shop, subscriber: str) -> dict[int, str]:
        """The state each live worker last reported for ``subscriber``, by pid
        (the reports of killed ones linger until they go stale)."""
        live = {worker.pid for worker in self.alive()}
        return {
            report.pid: report.state
            for report in shop.views.reports.all().get(subscriber, [])
            if report.pid in live
        }

    def active_with_standby(self, shop: Shop, subscriber: str) -> Worker | None:
        """The live worker whose instance of ``subscriber`` is active, if
        another live one stands by."""
        states = self.instances(shop, subscriber)
        active = [pid for pid, state in states.items() if state in ACTIVE_STATES]
        if len(active) != 1 or "standby" not in states.values():
            return None
        return next(worker for worker in self.alive() if worker.pid == active[0])

    def stop_all(self, timeout: float = 30.0) -> dict[int, int | None]:
        """SIGTERM to every live worker; each one's exit code (None: still
        running after ``timeout``, then killed)."""
        codes: dict[int, int | None] = {}
        alive = self.alive()
        for worker in alive:
            worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for worker in alive:
            try:
                codes[worker.pid] = worker.process.wait(
                    max(deadline - time.monotonic(), 0.1)
                )
            except subprocess.TimeoutExpired:
                codes[worker.pid] = None
        self.kill_all()
        return codes

    def kill_all(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()
        for file in self._files:
            file.close()


@dataclass(frozen=True)
class Kill:
    group: str
    pid: int
    aimed_at: str | None
    """The subscriber whose active instance it was, for an aimed kill."""
    takeover_seconds: float | None
    """From the kill until a standby reported itself active."""


class ChaosMonkey(threading.Thread):
    """Kills workers whenever the schedule says, in turn: the active instance
    of a subscriber with a standby (then it measures the takeover), any one
    worker that is up, and every instance of one group at once (nothing
    stands by: the restarted ones catch up). Killed workers are replaced at
    once. ``error`` is what stopped it, if anything did."""

    def __init__(
        self, shop: Shop, workers: Workers, schedule: KillSchedule, seed: int
    ) -> None:
        super().__init__(name="chaos monkey", daemon=True)
        self.shop = shop
        self.workers = workers
        self.schedule = schedule
        self.rng = random.Random(seed)
        self.kills: list[Kill] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for index in range(len(self.schedule.due_at)):
                self.schedule.wait_until_due(index)
                if self.schedule.aborted:
                    return
                turn, round_ = index % 3, index // 3
                if turn == 0:
                    aimed_at = AIMED_AT[round_ % len(AIMED_AT)]
                    self.kills.append(self._kill_active(aimed_at))
                elif turn == 1:
                    self.kills.append(self._kill_one())
                else:
                    group = GROUP_KILL_ORDER[round_ % len(GROUP_KILL_ORDER)]
                    self.kills += self._kill_group(group)
                self.schedule.one_killed()
        except BaseException as error:
            self.error = error
            self.schedule.finish(aborted=True)

    def _kill_active(self, subscriber: str) -> Kill:
        found: list[Worker] = []

        def active_found() -> bool:
            worker = self.workers.active_with_standby(self.shop, subscriber)
            found[:] = [] if worker is None else [worker]
            return worker is not None

        eventually(active_found, 90, f"an active {subscriber} with a standby")
        target = found[0]
        killed_at = time.monotonic()
        self.workers.kill_and_replace(target)

        def taken_over() -> bool:
            states = self.workers.instances(self.shop, subscriber)
            return any(state in ACTIVE_STATES for state in states.values())

        eventually(taken_over, 60, f"a standby of {subscriber} to take over")
        return Kill(target.group, target.pid, subscriber, time.monotonic() - killed_at)

    def _kill_one(self) -> Kill:
        """Kills a worker that is up (has reported), not one still starting."""
        up: list[Worker] = []

        def some_up() -> bool:
            up[:] = self.workers.up(self.shop)
            return bool(up)

        eventually(some_up, 90, "a worker that is up")
        target = self.rng.choice(up)
        self.workers.kill_and_replace(target)
        return Kill(target.group, target.pid, None, None)

    def _kill_group(self, group: str) -> list[Kill]:
        targets = [worker for worker in self.workers.alive() if worker.group == group]
        for target in targets:
            self.workers.kill_and_replace(target)
        return [Kill(group, target.pid, None, None) for target in targets]


# -- the checks ------------------------------------------------------------------


def merged(logs: Sequence[ClientLog], received: Counter[str]) -> ClientLog:
    total = ClientLog(received=Counter(received))
    for log in logs:
        total.checkouts += log.checkouts
        total.abandoned += log.abandoned
        total.received.update(log.received)
    return total


def order_problems(shop: Shop, record: ClientLog) -> list[str]:
    """Each checked-out cart has one order, placed once, decided once
    (confirmed or rejected), in the status its customer left it in; an
    abandoned cart has none; the log holds no other order."""
    problems = []
    for checkout in record.checkouts:
        history = list(shop.orders.events.get(checkout.order_id))
        kinds = Counter(type(event).__name__ for event in history)
        decided = kinds["Confirmed"] + kinds["Rejected"]
        if kinds["Placed"] != 1 or decided != 1:
            problems.append(f"{checkout.order_id}: events {dict(kinds)}")
        order = shop.get_order(checkout.order_id)
        if _status_of(order.status, order.cancellation_reason) != checkout.status:
            problems.append(
                f"{checkout.order_id}: {order.status} "
                f"({order.cancellation_reason}), the client left it "
                f"{checkout.status} ({checkout.plan})"
            )
        if order.cart_id != checkout.cart_id or dict(
            (line.sku, line.quantity) for line in order.lines
        ) != dict(checkout.lines):
            problems.append(f"{checkout.order_id}: not the cart's lines")
    for cart_id in record.abandoned:
        if shop.get_cart(cart_id).order_id is not None:
            problems.append(f"abandoned cart {cart_id} has an order")
    placed = placed_orders(shop)
    if placed != len(record.checkouts):
        problems.append(f"{placed} orders placed for {len(record.checkouts)} checkouts")
    return problems


def _status_of(status: str, cancellation_reason: str | None) -> str:
    if status != "cancelled":
        return status
    if cancellation_reason == CANCELLATION_REASON:
        return status
    expired = (cancellation_reason or "").startswith(PAYMENT_NOT_RECEIVED)
    return EXPIRED if expired else f"cancelled for {cancellation_reason!r}"


def unexpired(shop: Shop, record: ClientLog) -> list[UUID]:
    """The orders left unpaid whose deadline has not fired yet."""
    return [
        checkout.order_id
        for checkout in record.checkouts
        if checkout.plan is Plan.LEAVE
        and checkout.status == EXPIRED
        and shop.get_order(checkout.order_id).status == "confirmed"
    ]


def placed_orders(shop: Shop) -> int:
    """How many ``Order.Placed`` events the Orders log holds."""
    topics = (get_topic(Order.Placed),)
    count = 0
    position = 0
    while True:
        page = shop.orders.recorder.select_notifications(
            position, 1000, topics=topics, inclusive_of_start=False
        )
        count += len(page)
        if len(page) < 1000:
            return count
        position = page[-1].id


def stock_problems(shop: Shop, record: ClientLog) -> list[str]:
    """Per SKU, from what the clients did: received = on hand + shipped;
    reserved = what the paid orders hold (the unpaid ones expired); the stock view
    agrees with the aggregate."""
    shipped: Counter[str] = Counter()
    held: Counter[str] = Counter()
    for checkout in record.checkouts:
        if checkout.status == "shipped":
            shipped.update(checkout.lines)
        elif checkout.status == "paid":
            held.update(checkout.lines)
    problems = []
    for sku in SKUS:
        stock = shop.get_stock(sku)
        if record.received[sku] != stock.on_hand + shipped[sku]:
            problems.append(
                f"{sku}: received {record.received[sku]} != on hand "
                f"{stock.on_hand} + shipped {shipped[sku]}"
            )
        if stock.reserved != held[sku]:
            problems.append(f"{sku}: reserved {stock.reserved} != held {held[sku]}")
        view = shop.queries.stock_level(sku)
        seen = None if view is None else (view.on_hand, view.reserved)
        if seen != (stock.on_hand, stock.reserved):
            problems.append(f"{sku}: stock view {seen} != aggregate {stock}")
    return problems


def outcome_counts(record: ClientLog) -> Counter[str]:
    return Counter(checkout.status for checkout in record.checkouts)


def summary(kills: Sequence[Kill]) -> Iterator[str]:
    for kill in kills:
        aimed = f" (active {kill.aimed_at})" if kill.aimed_at else ""
        takeover = (
            ""
            if kill.takeover_seconds is None
            else f", standby took over in {kill.takeover_seconds:.1f} s"
        )
        yield f"killed {kill.group} worker {kill.pid}{aimed}{takeover}"
