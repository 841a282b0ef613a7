"""SQLAlchemy engines for the view store, one function per engine kind, and how
to read back the times they hold."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event

# Execution option that makes a SQLite transaction take the write lock when it
# begins. A transaction that reads its position and then writes would otherwise
# fail with SQLITE_BUSY when another writer committed in between (WAL snapshots
# cannot be upgraded), instead of waiting its turn.
WRITE_TRANSACTION = {"eventshop_write": True}


def sqlite_engine(path: Path, *, lock_timeout: float = 30.0) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": lock_timeout, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: object) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, not pysqlite.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        if connection.get_execution_options().get("eventshop_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

    return engine


def postgres_engine(
    *,
    host: str,
    port: int,
    user: str,
    password: str,
    dbname: str,
    schema: str,
    pool_size: int = 2,
    max_overflow: int = 6,
    application_name: str = "eventshop:views",
) -> Engine:
    url = URL.create(
        "postgresql+psycopg",
        username=user,
        password=password or None,
        host=host,
        port=port,
        database=dbname,
    )
    return create_engine(
        url,
        connect_args={
            "options": f"-c search_path={schema}",
            "application_name": application_name,
        },
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
    )


def as_utc(moment: datetime) -> datetime:
    """A time read back from a view, in UTC. SQLite gives back naive datetimes
    for what was stored as UTC; PostgreSQL gives aware ones in the session's
    time zone."""
    return (
        moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    )
