"""Code that concurrency tests run in other processes.

It lives in an importable module (not in a test module) because processes made
with the "spawn" start method import the function they run by name.
"""

from __future__ import annotations

import random
import traceback
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.persistence import IntegrityError, Recording

from application.config import Settings
from application.services import Inventory
from domain.errors import ShopError

WORKER_NAMESPACE = uuid5(NAMESPACE_URL, "https://eventshop.invalid/tests/workers")


def order_id_of(worker: int, attempt: int) -> UUID:
    """A distinct order id for each attempt of each worker."""
    return uuid5(WORKER_NAMESPACE, f"{worker}/{attempt}")


class CountingInventory(Inventory):
    """The Inventory service, counting the saves the store refused as stale."""

    name = "Inventory"  # the same tables as the real service

    lost_races = 0

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        try:
            return super().save(*objs, **kwargs)
        except IntegrityError:
            self.lost_races += 1
            raise


@dataclass(frozen=True)
class Attempt:
    order_id: UUID
    quantity: int
    outcome: str
    """"reserved", or the class name of the typed error that refused it."""


@dataclass(frozen=True)
class WorkerReport:
    worker: int
    attempts: list[Attempt]
    lost_races: int
    crash: str | None = None


@dataclass(frozen=True)
class WorkerTask:
    database_url: str
    sku: str
    worker: int
    attempts: int


def reserve_many(
    task: WorkerTask, start: Barrier, reports: Queue[WorkerReport]
) -> None:
    """Tries ``task.attempts`` reservations of 1 to 3 units of ``task.sku``, each
    for an order of its own, and reports what became of each."""
    worker = task.worker
    rng = random.Random(worker)
    done: list[Attempt] = []
    inventory: CountingInventory | None = None
    try:
        inventory = CountingInventory(Settings.from_url(task.database_url))
        start.wait(timeout=60)
        for attempt in range(task.attempts):
            order_id = order_id_of(worker, attempt)
            quantity = rng.randint(1, 3)
            try:
                inventory.reserve(task.sku, order_id, quantity)
            except ShopError as error:
                outcome = type(error).__name__
            else:
                outcome = "reserved"
            done.append(Attempt(order_id, quantity, outcome))
        reports.put(WorkerReport(worker, done, inventory.lost_races))
    except BaseException:
        lost = 0 if inventory is None else inventory.lost_races
        reports.put(WorkerReport(worker, done, lost, traceback.format_exc()))
        raise
    finally:
        if inventory is not None:
            inventory.close()
