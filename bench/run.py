"""eventshop benchmarks, each against a baseline measured in the same run.

    .venv/bin/python -m bench.run [--events 20000] [--commands 2000] [--postgres URL]

1. Commands: ``Shop.receive_stock`` (load, check, save with metadata, through the
   append-only recorders) against the same command on a plain ``eventsourcing``
   Application with the library's own recorders, on the same engine.
2. Catch-up: the stock read model catching up on a backlog with eventshop's
   batched runner (one transaction per page of up to 500 events) against the same
   handlers applied one event per transaction, as a runner without batching does.

It prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from eventsourcing.application import Application
from psycopg import sql
from rich.console import Console
from rich.table import Table

from application.config import Settings
from application.shop import Shop
from domain.inventory import InventoryItem
from projections.stock import StockLevels
from projections.store import subscriber_name


@dataclass(frozen=True)
class Figure:
    benchmark: str
    engine: str
    variant: str
    operations: int
    seconds: float
    peak_mib: float

    @property
    def rate(self) -> float:
        return self.operations / self.seconds


@dataclass
class Options:
    trace_memory: bool = False


OPTIONS = Options()


def measure(
    benchmark: str, engine: str, variant: str, operations: int, work: Callable[[], None]
) -> Figure:
    # tracemalloc slows Python code several times over, so it is opt-in.
    if OPTIONS.trace_memory:
        tracemalloc.start()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if OPTIONS.trace_memory else 0
    if OPTIONS.trace_memory:
        tracemalloc.stop()
    return Figure(benchmark, engine, variant, operations, seconds, peak / 2**20)


class PlainInventory(Application[uuid.UUID]):
    """The baseline: the library's own application and recorders, with the same
    snapshot interval as eventshop's Inventory, and nothing else."""

    name = "PlainInventory"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {InventoryItem: 50}


def bench_commands(settings: Settings, commands: int) -> list[Figure]:
    engine = settings.engine
    figures = []
    with Shop(settings=settings, subscribers="workers") as shop:
        shop.register_product("BENCH-1", "bench", "1.00")

        def shop_receive() -> None:
            for _ in range(commands):
                shop.receive_stock("BENCH-1", 1)

        figures.append(
            measure(
                "commands",
                engine,
                "eventshop Shop.receive_stock",
                commands,
                shop_receive,
            )
        )
    plain_env = {
        key: value
        for key, value in settings.service_env("PlainInventory").items()
        if key != "PERSISTENCE_MODULE"
    }
    plain_env["PERSISTENCE_MODULE"] = (
        "eventsourcing.sqlite" if engine == "sqlite" else "eventsourcing.postgres"
    )
    plain = PlainInventory(env=plain_env)
    item = InventoryItem.register("BENCH-2", "bench", "1.00")
    plain.save(item)

    def plain_receive() -> None:
        for _ in range(commands):
            loaded: InventoryItem = plain.repository.get(item.id)
            loaded.receive(1)
            plain.save(loaded)

    figures.append(
        measure("commands", engine, "plain eventsourcing app", commands, plain_receive)
    )
    plain.close()
    return figures


def bench_catch_up(settings: Settings, events: int) -> list[Figure]:
    engine = settings.engine
    with Shop(settings=settings, subscribers="workers") as shop:
        item = InventoryItem.register("BACKLOG-1", "backlog", "1.00")
        for _ in range(events - 1):
            item.receive(1)
        shop.inventory.save(item)
        stock = next(s for s in shop.subscribers.subscribers if s.name == "stock")

        def batched() -> None:
            shop.subscribers.start()
            shop.wait_until_processed(timeout=600, only=["stock"])
            shop.subscribers.stop()

        batched_figure = measure(
            "catch-up", engine, "eventshop, batches of <=500", events, batched
        )
        assert stock.position() == events

        # Baseline: the same handlers into a fresh generation, one event a time.
        store = shop.views
        store.create_generation(StockLevels, 99)
        notifications = shop.inventory.recorder.select_notifications(
            start=None, limit=events
        )

        def one_by_one() -> None:
            position = None
            for notification in notifications:
                event = shop.inventory.mapper.to_domain_event(notification)
                store.apply(
                    StockLevels,
                    99,
                    [event],
                    expected_position=position,
                    new_position=notification.id,
                )
                position = notification.id

        single_figure = measure(
            "catch-up", engine, "one transaction per event", events, one_by_one
        )
        assert store.position(subscriber_name(StockLevels, 99), "Inventory") == events
        store.drop_generation(StockLevels, 99)
    return [batched_figure, single_figure]


@contextmanager
def temporary_schema(url: str) -> Iterator[str]:
    """A fresh schema in the database at ``url``, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield schema
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema))
            )


def schema_settings(url: str, schema: str) -> Settings:
    separator = "&" if "?" in url else "?"
    return Settings.from_url(f"{url}{separator}schema={schema}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--commands", type=int, default=2_000)
    parser.add_argument(
        "--memory", action="store_true", help="trace peak Python memory (slower)"
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL database to benchmark in (a temporary schema); '' to skip",
    )
    args = parser.parse_args()
    OPTIONS.trace_memory = args.memory
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as folder:
        figures += bench_commands(
            Settings.from_url(data_dir=Path(folder) / "commands"), args.commands
        )
        figures += bench_catch_up(
            Settings.from_url(data_dir=Path(folder) / "catch-up"), args.events
        )
    if args.postgres:
        with temporary_schema(args.postgres) as schema:
            figures += bench_commands(
                schema_settings(args.postgres, schema), args.commands
            )
        with temporary_schema(args.postgres) as schema:
            figures += bench_catch_up(
                schema_settings(args.postgres, schema), args.events
            )

    table = Table(title="eventshop benchmarks (baseline measured in the same run)")
    for column in ("benchmark", "engine", "variant"):
        table.add_column(column)
    for column in ("operations", "seconds", "per second", "peak MiB (Python)"):
        table.add_column(column, justify="right")
    for figure in figures:
        table.add_row(
            figure.benchmark,
            figure.engine,
            figure.variant,
            str(figure.operations),
            f"{figure.seconds:.2f}",
            f"{figure.rate:,.0f}",
            f"{figure.peak_mib:.1f}" if OPTIONS.trace_memory else "-",
        )
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
