"""First-page latency of every indexed audit query on a large audit index.

    .venv/bin/python -m bench.audit_queries [--events 1000000] [--postgres URL]

The index rows are generated directly (shaped like the audit projections'
rows: a service's events spread over aggregates, actors, customers, SKUs and a
month of time), because replaying a million events through the projection would
measure the projection, not the queries. Each query then runs through the real
query code (``projections.audit.queries``) and, as the baseline in the same run,
again with the database told not to use indexes. It prints figures and asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, insert

from bench.stores import temporary_schema
from projections.audit.indexes import AUDIT_INDEXES
from projections.audit.queries import EventFilter, find_events, history, trace
from projections.store import ViewStore
from projections.store.engine import postgres_engine, sqlite_engine

ACTORS = [f"user-{n}" for n in range(100)] + ["system", "process:allocation"]
EVENT_TYPES = {
    "Carts": ["Cart.Opened", "Cart.ItemAdded", "Cart.CheckedOut"],
    "Orders": ["Order.Placed", "Order.Confirmed", "Order.Paid", "Order.Shipped"],
    "Inventory": ["InventoryItem.StockReceived", "InventoryItem.StockReserved"],
}
START = datetime(2026, 10, 1, tzinfo=UTC)


def fill(store: ViewStore, events: int, seed: int = 7) -> tuple[uuid.UUID, uuid.UUID]:
    """Writes ``events`` index rows across the three services; returns an
    aggregate id and a correlation id that exist, to query for."""
    rng = random.Random(seed)
    per_service = events // len(AUDIT_INDEXES)
    some_aggregate = some_correlation = uuid.UUID(int=0)
    for index in AUDIT_INDEXES:
        tables = store.registry.active_tables(index)
        rows: list[dict[str, Any]] = []
        skus: list[dict[str, Any]] = []
        aggregate, version = uuid.uuid4(), 0
        correlation = uuid.uuid4()
        for n in range(per_service):
            if version == 0 or rng.random() < 0.1:
                aggregate, version = uuid.uuid4(), 0
                correlation = uuid.uuid4()
            version += 1
            occurred_at = START + timedelta(seconds=n * 2.6)
            sku = f"SKU-{rng.randrange(500)}"
            rows.append(
                {
                    "aggregate_id": aggregate,
                    "version": version,
                    "event_type": rng.choice(EVENT_TYPES[index.follows]),
                    "occurred_at": occurred_at,
                    "actor": rng.choice(ACTORS),
                    "correlation_id": correlation,
                    "causation_id": None,
                    "customer_id": f"customer-{rng.randrange(10_000)}",
                    "payload": json.dumps({"sku": sku, "quantity": 1}),
                }
            )
            skus.append(
                {
                    "sku": sku,
                    "occurred_at": occurred_at,
                    "aggregate_id": aggregate,
                    "version": version,
                }
            )
            if len(rows) == 20_000:
                _write(store.engine, tables[index.events], rows)
                _write(store.engine, tables[index.event_skus], skus)
                rows, skus = [], []
            some_aggregate, some_correlation = aggregate, correlation
        _write(store.engine, tables[index.events], rows)
        _write(store.engine, tables[index.event_skus], skus)
    return some_aggregate, some_correlation


def _write(engine: Engine, table: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        with engine.begin() as connection:
            connection.execute(insert(table), rows)


def drop_indexes(store: ViewStore) -> None:
    """The baseline: the same tables and statements, with only primary keys."""
    with store.engine.begin() as connection:
        for index in AUDIT_INDEXES:
            for table in store.registry.active_tables(index).values():
                for table_index in table.indexes:
                    table_index.drop(connection)


def timed(work: Callable[[], object], runs: int) -> tuple[float, float]:
    """(median, worst) milliseconds over ``runs`` runs after one warm-up."""
    work()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def queries(
    store: ViewStore, aggregate: uuid.UUID, correlation: uuid.UUID
) -> dict[str, Callable[[], object]]:
    week = START + timedelta(days=10)
    return {
        "newest events": lambda: find_events(store, EventFilter()),
        "by type": lambda: find_events(store, EventFilter(event_types=("Order.Paid",))),
        "by actor": lambda: find_events(store, EventFilter(actor="user-42")),
        "by SKU": lambda: find_events(store, EventFilter(sku="SKU-7")),
        "by customer": lambda: find_events(
            store, EventFilter(customer_id="customer-1234")
        ),
        "time window, oldest first": lambda: find_events(
            store,
            EventFilter(since=week, until=week + timedelta(days=7)),
            newest_first=False,
        ),
        "type + actor + window": lambda: find_events(
            store,
            EventFilter(
                event_types=("Cart.ItemAdded",),
                actor="user-7",
                since=week,
                until=week + timedelta(days=7),
            ),
        ),
        "history of one aggregate": lambda: history(store, "Inventory", aggregate),
        "trace of one action": lambda: trace(store, correlation),
    }


def run(store: ViewStore, events: int, runs: int, table: Table, label: str) -> None:
    store.create_schema()
    started = time.perf_counter()
    aggregate, correlation = fill(store, events)
    seconds = time.perf_counter() - started
    Console(width=150).print(f"{label}: wrote {events:,} index rows in {seconds:.0f} s")
    if store.is_postgres:
        with store.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    asked = queries(store, aggregate, correlation)
    measured = {name: timed(work, runs) for name, work in asked.items()}
    drop_indexes(store)
    baseline = {name: timed(work, 1) for name, work in asked.items()}
    for name, (median, worst) in measured.items():
        table.add_row(
            label,
            name,
            f"{median:.1f}",
            f"{worst:.1f}",
            f"{baseline[name][0]:.1f}",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--postgres", default="postgresql://postgres@127.0.0.1:5432/test"
    )
    args = parser.parse_args()
    table = Table(
        title=f"First page (50 rows) of audit queries, {args.events:,} events"
    )
    for column in ("engine", "query"):
        table.add_column(column)
    for column in ("median ms", "worst ms", "baseline: no indexes, ms"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as folder:
        engine = sqlite_engine(Path(folder) / "views.sqlite3")
        run(ViewStore(engine, AUDIT_INDEXES), args.events, args.runs, table, "sqlite")
        engine.dispose()
    if args.postgres:
        with temporary_schema(args.postgres) as schema:
            info = psycopg.conninfo.conninfo_to_dict(args.postgres)
            engine = postgres_engine(
                host=str(info.get("host", "127.0.0.1")),
                port=int(str(info.get("port", 5432))),
                user=str(info.get("user", "postgres")),
                password=str(info.get("password", "")),
                dbname=str(info.get("dbname", "test")),
                schema=schema,
            )
            run(
                ViewStore(engine, AUDIT_INDEXES),
                args.events,
                args.runs,
                table,
                "postgres",
            )
            engine.dispose()
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
