"""Helpers for the tests of personal data: fake delivery details for a
customer, and the raw rows of a shop's event tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import TypedDict

import psycopg
from psycopg import sql

from application import Settings
from application.service_names import SERVICE_NAMES


class Details(TypedDict):
    name: str
    email: str
    address: str


def details_for(customer_id: str) -> Details:
    """Plausible, made-up delivery details, the same for a customer each time."""
    return Details(
        name=f"Test Person {customer_id}",
        email=f"{customer_id}@example.org",
        address=f"{len(customer_id)} Example Road, Testtown",
    )


def event_table_bytes(settings: Settings) -> Iterator[tuple[str, bytes]]:
    """(table, one value as bytes) for every value of every event and snapshot
    table of the shop's services, read raw, around the library's mapper."""
    for service in SERVICE_NAMES:
        storage = settings.storage_of(service)
        if storage.engine == "sqlite":
            with closing(sqlite3.connect(storage.sqlite_file(service))) as db:
                tables = [
                    name
                    for (name,) in db.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table'"
                    )
                ]
                for table in tables:
                    if table.endswith(("_events", "_snapshots")):
                        for row in db.execute(f'SELECT * FROM "{table}"'):
                            yield from ((table, _as_bytes(v)) for v in row)
            continue
        pg = storage.postgres
        assert pg is not None
        with psycopg.connect(pg.conninfo()) as db:
            tables = [
                name
                for (name,) in db.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = %s",
                    (pg.schema,),
                )
            ]
            for table in tables:
                if table.endswith(("_events", "_snapshots")):
                    query = sql.SQL("SELECT * FROM {}").format(
                        sql.Identifier(pg.schema, table)
                    )
                    for row in db.execute(query):
                        yield from ((table, _as_bytes(v)) for v in row)


def _as_bytes(value: object) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value).encode()
