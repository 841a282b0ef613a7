"""The view store's database as its parts share it, and the schema changes made
in it: the system tables, and the tables of a generation of a projection."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Index, inspect, text
from sqlalchemy.schema import CreateTable

from projections.read_model import ReadModel, generation_tables
from projections.store.engine import WRITE_TRANSACTION
from projections.store.tables import generations_table, system_metadata

# Serializes schema changes across processes on PostgreSQL (same key as the
# event store's, so tables of both kinds are never created concurrently).
SCHEMA_LOCK_KEY = 0x6576_7368_6F70


@dataclass(frozen=True)
class StoreDatabase:
    """The engine every part of the view store works through."""

    engine: Engine
    # Its write transactions: on SQLite they take the write lock as they begin.
    writer: Engine
    is_postgres: bool

    @classmethod
    def of(cls, engine: Engine) -> StoreDatabase:
        return cls(
            engine=engine,
            writer=engine.execution_options(**WRITE_TRANSACTION),
            is_postgres=engine.dialect.name == "postgresql",
        )

    @contextmanager
    def schema_change(self) -> Iterator[Connection]:
        """A transaction in which no other process changes the schema."""
        with self.writer.begin() as connection:
            if self.is_postgres:
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": SCHEMA_LOCK_KEY},
                )
            yield connection


def create_system_tables(connection: Connection) -> None:
    """Creates the store's own tables that are missing, and upgrades old ones."""
    if connection.dialect.name == "postgresql":
        _create_own_schema(connection)
    system_metadata.create_all(connection)
    _add_missing_registry_columns(connection)


def _create_own_schema(connection: Connection) -> None:
    """Creates the schema the store's connections work in (their search path)
    if it is missing: the views may have a schema of their own, which no
    service's event store creates. Under the schema lock, so that processes
    starting at once do not race to create it."""
    search_path = connection.execute(
        text("SELECT current_setting('search_path')")
    ).scalar_one()
    schema = str(search_path).split(",")[0].strip().strip('"')
    if schema and schema != "$user" and not _schema_exists(connection, schema):
        quoted = connection.dialect.identifier_preparer.quote_identifier(schema)
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))


def _schema_exists(connection: Connection, schema: str) -> bool:
    # Asked first: CREATE SCHEMA IF NOT EXISTS needs the right to create
    # schemas even when it exists, which a least-privilege role lacks.
    found = connection.execute(
        text("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = :schema"),
        {"schema": schema},
    ).first()
    return found is not None


def _add_missing_registry_columns(connection: Connection) -> None:
    """Upgrades a registry created before projections had versions."""
    columns = {
        column["name"]
        for column in inspect(connection).get_columns(generations_table.name)
    }
    if "active_version" not in columns:
        connection.execute(
            text(
                "ALTER TABLE eventshop_generations"
                " ADD COLUMN active_version INTEGER NOT NULL DEFAULT 1"
            )
        )


def create_generation_tables(
    connection: Connection,
    projection: type[ReadModel],
    generation: int,
    deferred: Collection[Index] = (),
) -> None:
    """Creates the tables of one generation that are missing, with their
    indexes except the ``deferred`` ones."""
    for table in generation_tables(projection, generation).values():
        if not deferred:
            table.create(connection, checkfirst=True)
            continue
        connection.execute(CreateTable(table, if_not_exists=True))
        for index in table.indexes:
            if index not in deferred:
                index.create(connection, checkfirst=True)
