"""The floor under an audit-index rebuild: the same rows, written by hand.

A baseline of the read-models workload. It reads a log as the read limit
does (the library's recorder in pages of 500, its mapper decoding every
notification), builds the audit index's rows of every event with plain
Python (the projection's own payload and SKU functions, no framework: no
row-change fold, no tracking, no generations), and writes each page with one
DB-API ``executemany`` per table and one commit, into a scratch copy of the
index's tables with all their indexes. Nothing an audit index does can be
left out, so no rebuild of it can beat this figure on the same machine: where
this floor is under half the read limit, so must the rebuild be.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import AggregateCreated
from sqlalchemy import create_engine

from bench.stores import EngineName, temporary_schema
from bench.workloads.common import LogRead, decoded_pages
from domain.metadata import metadata_of
from projections.audit.indexes import (
    AuditIndex,
    event_type_name,
    payload_json,
    skus_named,
)
from projections.store import BULK_PAGE_CACHE

Rows = dict[str, list[tuple[Any, ...]]]


def _sqlite_uuid(value: UUID | None) -> str | None:
    # SQLAlchemy's Uuid type keeps a UUID as its 32 hex digits on SQLite.
    return None if value is None else value.hex


def _sqlite_moment(value: datetime) -> str:
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


class _AuditRows:
    """The audit rows of one page of events, as the index would write them."""

    def __init__(self, index: type[AuditIndex], engine: EngineName) -> None:
        self.index = index
        self.for_sqlite = engine == "sqlite"
        # What each aggregate is about, as the index's subjects table keeps it.
        self.customers: dict[UUID, str] = {}
        self.skus: dict[UUID, set[str]] = {}

    def of(self, events: list[Any]) -> Rows:
        index = self.index
        rows: Rows = {index.events: [], index.event_skus: [], index.subjects: []}
        uuid = _sqlite_uuid if self.for_sqlite else (lambda value: value)
        moment = _sqlite_moment if self.for_sqlite else (lambda value: value)
        for event in events:
            aggregate = event.originator_id
            named = skus_named(event)
            if isinstance(event, AggregateCreated):
                self.skus[aggregate] = set(named)
                rows[index.subjects].extend(
                    (uuid(aggregate), None, sku) for sku in sorted(named)
                )
                customer = getattr(event, "customer_id", None)
                if customer is not None:
                    self.customers[aggregate] = customer
                    rows[index.subjects].append((uuid(aggregate), customer, None))
            metadata = metadata_of(event)
            occurred = moment(event.timestamp)
            rows[index.events].append(
                (
                    uuid(aggregate),
                    event.originator_version,
                    event_type_name(type(event)),
                    occurred,
                    metadata.actor if metadata else "unknown",
                    uuid(metadata.correlation_id) if metadata else None,
                    metadata.causation_id if metadata else None,
                    self.customers.get(aggregate),
                    payload_json(event),
                )
            )
            rows[index.event_skus].extend(
                (sku, occurred, uuid(aggregate), event.originator_version)
                for sku in sorted(named | self.skus.get(aggregate, set()))
            )
        return rows


@contextmanager
def _scratch_tables(
    index: type[AuditIndex], engine: EngineName, postgres_url: str, scratch: Path
) -> Iterator[Any]:
    """A DB-API connection to fresh copies of the index's tables (indexes
    included), with the settings a rebuild's shadow generation writes with."""
    if engine == "sqlite":
        with _sqlite_tables(index, scratch) as connection:
            yield connection
    else:
        with _postgres_tables(index, postgres_url) as postgres:
            yield postgres


@contextmanager
def _sqlite_tables(
    index: type[AuditIndex], scratch: Path
) -> Iterator[sqlite3.Connection]:
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        path = Path(folder) / "raw.sqlite3"
        index.metadata.create_all(create_engine(f"sqlite:///{path}"))
        connection = sqlite3.connect(path)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(BULK_PAGE_CACHE)
            yield connection
        finally:
            connection.close()


@contextmanager
def _postgres_tables(
    index: type[AuditIndex], postgres_url: str
) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    with temporary_schema(postgres_url) as schema:
        search_path = f"-csearch_path={schema}"
        tables = create_engine(
            postgres_url.replace("postgresql://", "postgresql+psycopg://", 1),
            connect_args={"options": search_path},
        )
        index.metadata.create_all(tables)
        tables.dispose()
        with psycopg.connect(postgres_url, options=search_path) as connection:
            connection.execute("SET synchronous_commit = off")
            yield connection


def _insert_sql(table: str, columns: int, engine: EngineName) -> str:
    marker = "?" if engine == "sqlite" else "%s"
    return f"INSERT INTO {table} VALUES ({', '.join([marker] * columns)})"


def raw_audit_inserts(
    service: Application[Any],
    index: type[AuditIndex],
    engine: EngineName,
    *,
    postgres_url: str,
    scratch: Path,
) -> tuple[LogRead, dict[str, int]]:
    """Reads and decodes the log of ``service`` and writes the audit rows of
    every event by hand, one transaction per page; returns the notifications
    and seconds, and the rows written per table (for a check against the
    rebuilt index)."""
    builder = _AuditRows(index, engine)
    columns = {
        name: len(index.metadata.tables[name].columns)
        for name in (index.events, index.event_skus, index.subjects)
    }
    statements = {
        name: _insert_sql(name, count, engine) for name, count in columns.items()
    }
    written = dict.fromkeys(columns, 0)
    with _scratch_tables(index, engine, postgres_url, scratch) as connection:
        notifications = 0
        started = time.perf_counter()
        for events in decoded_pages(service):
            cursor = connection.cursor()
            for name, values in builder.of(events).items():
                if values:
                    cursor.executemany(statements[name], values)
                    written[name] += len(values)
            connection.commit()
            notifications += len(events)
        seconds = time.perf_counter() - started
    return LogRead(notifications, seconds), written
