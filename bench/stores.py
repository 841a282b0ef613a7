"""Throw-away stores to benchmark in: a SQLite folder, or a PostgreSQL schema."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql

EngineName = Literal["sqlite", "postgres"]
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


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


def with_schema(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}schema={schema}"


@contextmanager
def temporary_store(
    engine: EngineName, *, postgres_url: str, scratch: Path
) -> Iterator[str]:
    """The database URL of an empty shop store, removed afterwards: a folder
    under ``scratch`` for SQLite, a new schema of ``postgres_url`` otherwise."""
    if engine == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="store-", dir=scratch))
        try:
            yield f"sqlite:///{folder.resolve()}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        with temporary_schema(postgres_url) as schema:
            yield with_schema(postgres_url, schema)


def postgres_version(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"
