"""Workload 5: commands on an embedded ``Shop`` against a plain eventsourcing
application doing the same saves.

Two commands: ``register_product`` with a fresh SKU (one new aggregate per
call) and ``receive_stock`` (load, change, save one aggregate of the
process's own). The baseline is ``PlainInventory``, an
``eventsourcing.application.Application`` on the library's own recorders with
the same snapshot interval, saving ``InventoryItem.register(...)`` or loading,
``receive``-ing and saving the item. Each runs in 1 and in 8 client processes
(spawned, each with its own ``Shop`` or application, all on one fresh store
per measurement) for ``command_seconds``, after every process is set up (the
shop's subscribers started and caught up); the figure is all the processes'
commands over the time from the first start to the last end.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from eventsourcing.application import Application

from application.config import Settings
from application.shop import Shop
from bench.processes import StartSignal, run_clients
from bench.results import Result, Target, rate
from bench.workloads.common import Bench
from domain.inventory import InventoryItem
from domain.values import inventory_item_id

WORKLOAD = "commands"
COMMANDS = ("register_product", "receive_stock")
VARIANTS = ("plain", "eventshop")
CLOSE_TO_PLAIN = Target(min_ratio=0.8)


class PlainInventory(Application[uuid.UUID]):
    """The baseline: the library's own application and recorders, with the same
    snapshot interval as eventshop's Inventory, and nothing else."""

    name = "PlainInventory"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {InventoryItem: 50}


def plain_env(database_url: str, *, create_table: bool = True) -> dict[str, str]:
    """The library's own persistence on the store a shop URL names. (Tables
    made by several processes at once trip over each other, on PostgreSQL as
    on SQLite: the clients leave that to ``prepare``.)"""
    return {
        **_plain_storage(database_url),
        "CREATE_TABLE": "y" if create_table else "n",
    }


def _plain_storage(database_url: str) -> dict[str, str]:
    settings = Settings.from_url(database_url)
    if settings.engine == "sqlite":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(settings.data_dir / "plaininventory.sqlite3"),
            "SQLITE_LOCK_TIMEOUT": str(settings.lock_timeout_seconds),
        }
    pg = settings.postgres
    assert pg is not None
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_HOST": pg.host,
        "POSTGRES_PORT": str(pg.port),
        "POSTGRES_USER": pg.user,
        "POSTGRES_PASSWORD": pg.password,
        "POSTGRES_DBNAME": pg.dbname,
        "POSTGRES_SCHEMA": pg.schema,
        "POSTGRES_POOL_SIZE": str(settings.pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.pool_max_overflow),
        "POSTGRES_LOCK_TIMEOUT": str(settings.lock_timeout_seconds),
    }


def own_sku(client: int) -> str:
    return f"RECEIVE-{client}"


@dataclass(frozen=True)
class Step:
    """One measurement: a command, on one variant, on its own store."""

    command: str
    variant: str
    database_url: str

    @property
    def registers(self) -> bool:
        return self.command == "register_product"


@dataclass(frozen=True)
class Timed:
    commands: int
    started: float
    finished: float
    drain_seconds: float


def _timed(command: Callable[[int], None], seconds: float) -> Timed:
    started = time.monotonic()
    end, done = started + seconds, 0
    while time.monotonic() < end:
        command(done)
        done += 1
    return Timed(done, started, time.monotonic(), 0.0)


def _run_plain(step: Step, client: int, seconds: float, start: StartSignal) -> Timed:
    app = PlainInventory(env=plain_env(step.database_url, create_table=False))
    item_id = inventory_item_id(own_sku(client))

    def register(n: int) -> None:
        app.save(InventoryItem.register(f"NEW-{client}-{n}", "new", "1.00"))

    def receive(_: int) -> None:
        item: InventoryItem = app.repository.get(item_id)
        item.receive(1)
        app.save(item)

    try:
        start()
        return _timed(register if step.registers else receive, seconds)
    finally:
        app.close()


def _run_shop(step: Step, client: int, seconds: float, start: StartSignal) -> Timed:
    sku = own_sku(client)
    with Shop(database_url=step.database_url) as shop:
        # Set up means hosting too: the helper's start-up is not the commands'.
        shop.wait_until_started(timeout=300)
        shop.wait_until_processed(timeout=300)

        def register(n: int) -> None:
            shop.register_product(f"NEW-{client}-{n}", "new", "1.00")

        def receive(_: int) -> None:
            shop.receive_stock(sku, 1)

        start()
        timed = _timed(register if step.registers else receive, seconds)
        # Not counted: how long the subscribers then take to catch up.
        drain_started = time.monotonic()
        shop.wait_until_processed(timeout=600)
        return replace(timed, drain_seconds=time.monotonic() - drain_started)


def command_client(
    client: int, steps: list[Step], seconds: float, *, start: StartSignal
) -> list[Timed]:
    """Runs every step in turn, in step with the other clients."""
    return [
        (_run_plain if step.variant == "plain" else _run_shop)(
            step, client, seconds, start
        )
        for step in steps
    ]


def prepare(step: Step, processes: int) -> None:
    """Creates the step's tables (several processes creating them at once on
    a new SQLite store trip over each other) and, for ``receive_stock``,
    registers the item each process receives stock for."""
    skus = [own_sku(client) for client in range(processes)]
    receiving = step.command == "receive_stock"
    if step.variant == "plain":
        app = PlainInventory(env=plain_env(step.database_url))
        try:
            if receiving:
                app.save(*(InventoryItem.register(sku, "own", "1.00") for sku in skus))
        finally:
            app.close()
        return
    with Shop(database_url=step.database_url) as shop:
        for sku in skus if receiving else ():
            shop.register_product(sku, "own", "1.00")
        shop.wait_until_processed(timeout=300)


def run(bench: Bench) -> None:
    sizes = bench.sizes
    for processes in sizes.command_processes:
        with ExitStack() as stores:
            steps = [
                Step(command, variant, stores.enter_context(bench.store()))
                for command in COMMANDS
                for variant in VARIANTS
            ]
            for step in steps:
                prepare(step, processes)
            bench.say(f"commands: {processes} client process(es)")
            timed = run_clients(
                command_client,
                [(client, steps, sizes.command_seconds) for client in range(processes)],
                timeout=sizes.timeout,
            )
        figures: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        for index, step in enumerate(steps):
            per_client = [client_steps[index] for client_steps in timed]
            commands = sum(t.commands for t in per_client)
            seconds = max(t.finished for t in per_client) - min(
                t.started for t in per_client
            )
            figures[(step.command, step.variant)] = (
                rate(commands, seconds),
                {
                    "commands": commands,
                    "seconds": seconds,
                    "drain_seconds": max(t.drain_seconds for t in per_client),
                },
            )
        for command in COMMANDS:
            value, details = figures[(command, "eventshop")]
            baseline, baseline_details = figures[(command, "plain")]
            bench.add(
                Result(
                    WORKLOAD,
                    bench.engine,
                    f"{command}, {processes} process{'es' if processes > 1 else ''}",
                    value,
                    "commands/s",
                    baseline=baseline,
                    baseline_label="plain eventsourcing",
                    target=CLOSE_TO_PLAIN,
                    note=f"then {details['drain_seconds']:.1f} s to catch up",
                    details={
                        "processes": processes,
                        "eventshop": details,
                        "plain": baseline_details,
                    },
                )
            )
