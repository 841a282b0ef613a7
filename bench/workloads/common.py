"""What every workload shares: the run's sizes, its engine and scratch space,
the shop's subscriber names, and waiting for a backlog to settle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from rich.console import Console

from application.shop import Shop
from bench.results import Result, WorkloadError, rate
from bench.stores import EngineName, temporary_store

# The shop's subscribers by name, as `eventshop topology` lists them, with
# the log each follows. The harness names them rather than importing the
# topology, so that it runs unchanged against older and newer code.
PROCESS_MANAGERS = ("checkout", "allocation", "confirmation")
READ_MODEL_LOGS = {
    "carts": "Carts",
    "orders": "Orders",
    "customer_orders": "Orders",
    "stock": "Inventory",
    "sales": "Orders",
    "payment_deadlines": "Orders",
    "audit_carts": "Carts",
    "audit_orders": "Orders",
    "audit_inventory": "Inventory",
}
READ_MODELS = tuple(READ_MODEL_LOGS)
LOGS = ("Carts", "Orders", "Inventory")
# How the demo deploys workers: process managers, read models, audit index
# (whose worker also keeps the hash chains).
WORKER_GROUPS = (
    PROCESS_MANAGERS,
    tuple(name for name in READ_MODELS if not name.startswith("audit_")),
    tuple(name for name in READ_MODELS if name.startswith("audit_")),
)
READ_PAGE = 500


@dataclass(frozen=True)
class Sizes:
    """How much work each workload does (``--smoke`` shrinks all of it)."""

    clients: int = 4
    store_checkouts: int = 8_000
    million_events: int = 1_000_000
    million_projections: tuple[str, ...] = ("stock", "audit_inventory")
    saga_checkouts: int = 2_000
    latency_rate: float = 50.0
    latency_seconds: float = 25.0
    latency_warmup: float = 2.0
    latency_hosting: tuple[str, ...] = ("embedded", "workers")
    command_seconds: float = 5.0
    command_processes: tuple[int, ...] = (1, 8)
    relay_checkouts: int = 8_000
    timeout: float = 1_800.0


# Every code path once (both ways of hosting where they differ), with as few
# process start-ups as that allows: they are most of a smoke run's time.
SMOKE_SIZES = Sizes(
    clients=1,
    store_checkouts=30,
    million_events=2_000,
    million_projections=("audit_inventory",),
    saga_checkouts=20,
    latency_seconds=1.0,
    latency_warmup=0.5,
    latency_hosting=("embedded",),
    command_seconds=0.5,
    command_processes=(2,),
    relay_checkouts=20,
    timeout=300.0,
)


@dataclass
class Bench:
    """One engine's share of a run: where to make stores, how big, and where
    the figures and the facts about the stores go."""

    engine: EngineName
    postgres_url: str
    scratch: Path
    sizes: Sizes
    console: Console
    results: list[Result] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def store(self) -> Iterator[str]:
        with temporary_store(
            self.engine, postgres_url=self.postgres_url, scratch=self.scratch
        ) as url:
            yield url

    def say(self, message: str) -> None:
        self.console.log(f"[dim]{self.engine}[/] {message}")

    def add(self, result: Result) -> None:
        self.results.append(result)

    def fact(self, workload: str, **facts: Any) -> None:
        self.facts.setdefault(workload, {}).update(facts)


def services(shop: Shop) -> dict[str, Application[Any]]:
    return {"Carts": shop.carts, "Orders": shop.orders, "Inventory": shop.inventory}


def wait_settled(
    shop: Shop,
    timeout: float,
    only: Collection[str] | None = None,
    check: Callable[[], None] = lambda: None,
) -> float:
    """Waits until the subscribers (all, or ``only``) have handled everything
    and everything it caused; calls ``check`` between waits (to notice a
    worker that died). Returns the moment it was settled."""
    deadline = time.monotonic() + timeout
    while True:
        check()
        try:
            shop.wait_until_processed(timeout=2.0, only=only)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise WorkloadError(
                    f"subscribers not caught up after {timeout:.0f} s"
                ) from None
            continue
        return time.monotonic()


def settled_moments(
    shop: Shop,
    names: Collection[str],
    timeout: float,
    check: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """Waits for the subscribers ``names``, each in a thread of its own, and
    returns the moment each had caught up (they run at once, so waiting for
    one after the other would time the slowest of those before it)."""
    moments: dict[str, float] = {}
    errors: list[BaseException] = []

    def wait_for(name: str) -> None:
        try:
            moments[name] = wait_settled(shop, timeout, [name], check)
        except BaseException as error:
            errors.append(error)

    waiters = [threading.Thread(target=wait_for, args=(name,)) for name in names]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
    if errors:
        raise WorkloadError(f"catch-up failed: {errors[0]!r}") from errors[0]
    return moments


@dataclass(frozen=True)
class LogRead:
    """The read limit of a log: its notifications read in pages and decoded."""

    notifications: int
    seconds: float

    @property
    def rate(self) -> float:
        return rate(self.notifications, self.seconds)


def decoded_pages(
    service: Application[Any], page: int = READ_PAGE
) -> Iterator[list[Any]]:
    """The whole log of ``service``, read with the library's recorder in pages
    of ``page`` and decoded with its mapper: each page's domain events."""
    recorder, mapper = service.recorder, service.mapper
    position = 0
    while True:
        batch = recorder.select_notifications(
            start=position, limit=page, inclusive_of_start=False
        )
        if not batch:
            return
        yield [mapper.to_domain_event(notification) for notification in batch]
        position = batch[-1].id


def read_limit(service: Application[Any], page: int = READ_PAGE) -> LogRead:
    """Reads and decodes the whole log of ``service`` (:func:`decoded_pages`)
    and does nothing else. The fastest any subscriber of that log could go."""
    notifications = 0
    started = time.perf_counter()
    for events in decoded_pages(service, page):
        notifications += len(events)
    return LogRead(notifications, time.perf_counter() - started)
