"""Applying a batch of events to a read model's tables, set-based.

One batch, whatever its size, costs a few statements per table: one SELECT per
table the projection declares in ``loads`` (before its handlers run), then, per
table it changed:

* one SELECT of the rows changed without being loaded, other than by setting
  columns (their pending operations are played on them in Python);
* one DELETE of every deleted key;
* one upsert (``INSERT ... ON CONFLICT DO UPDATE``) of every row rewritten
  whole, and one UPDATE of the rows of which only columns were set, each
  executed once for all their rows;
* one INSERT of every new row (COPY on PostgreSQL).

The statements are built once per table and compiled once per set of columns.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from operator import itemgetter
from typing import Any

from eventsourcing.domain import AggregateCreated
from psycopg import sql as psycopg_sql
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Delete,
    Dialect,
    Insert,
    Select,
    Table,
    Update,
    any_,
    bindparam,
    delete,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY

from projections.batching.changes import Changes, TableChanges
from projections.batching.rows import Key, Row
from projections.read_model import ReadModel
from projections.store.engine import as_utc

# Bound values per statement when a list of values becomes one parameter each
# (SQLite allows 32,766; PostgreSQL 65,535).
MAX_PARAMETERS = 30_000


def write_batch(
    connection: Connection,
    projection: type[ReadModel],
    tables: Mapping[str, Table],
    events: Sequence[object],
) -> None:
    """Handles ``events`` into ``tables`` (one generation of ``projection``)
    inside the caller's transaction: loads what the handlers read, folds every
    event into row changes, and writes them."""
    handled = [event for event in events if type(event) in projection.handlers()]
    if not handled:
        return
    dialect = connection.dialect.name
    changes = Changes(tables, projection.loads)
    if projection.loads:
        _load(connection, projection, tables, changes, handled)
    read_model = projection()
    for event in handled:
        read_model.handle(changes, event)
    for name, table_changes in changes.items():
        writer_for(tables[name], dialect).write(connection, table_changes)


def _load(
    connection: Connection,
    projection: type[ReadModel],
    tables: Mapping[str, Table],
    changes: Changes,
    events: Sequence[Any],
) -> None:
    """Loads the rows ``projection.loads`` names for the batch's aggregates."""
    # An aggregate created in this batch has no rows stored yet.
    created = {
        event.originator_id for event in events if isinstance(event, AggregateCreated)
    }
    stored = list(
        dict.fromkeys(
            event.originator_id
            for event in events
            if event.originator_id not in created
        )
    )
    for name, column in projection.loads.items():
        writer = writer_for(tables[name], connection.dialect.name)
        wanted = (
            [*stored, *created] if name in projection.loads_before_creation else stored
        )
        rows = writer.load(connection, column, wanted)
        changes[name].load(rows, groups=[*stored, *created])


class TableWriter:
    """The statements that read and write one table's changes."""

    def __init__(self, table: Table, dialect: str) -> None:
        self.table = table
        self._postgres = dialect == "postgresql"
        self._key = list(table.primary_key.columns)
        self._insert = _ManyRows(insert(table), table, copy=True)
        self._replace: _ManyRows | None = None
        self._update: _ManyRows | None = None
        self._delete: Delete | None = None
        self._select_keys: Select[Any] | None = None
        if self._key:
            self._replace = _ManyRows(_upsert(table, dialect), table, copy=False)
            self._update = _ManyRows(None, table, copy=False)
            self._delete = delete(table).where(self._matching(self._key))
            self._select_keys = select(table).where(self._matching(self._key))
        self._select_by: dict[str, Select[Any]] = {}
        # SQLite hands back what it stored as UTC without the offset.
        self._naive_times = (
            []
            if self._postgres
            else [
                column.name
                for column in table.columns
                if isinstance(column.type, DateTime) and column.type.timezone
            ]
        )

    def load(
        self, connection: Connection, column: str, values: Sequence[object]
    ) -> list[Row]:
        """Every row whose ``column`` holds one of ``values``."""
        if not values:
            return []
        statement = self._select_by.get(column)
        if statement is None:
            statement = select(self.table).where(self._matching([self.table.c[column]]))
            self._select_by[column] = statement
        return self._rows(connection, statement, list(values), 1)

    def write(self, connection: Connection, changes: TableChanges) -> None:
        unresolved = changes.unresolved()
        if unresolved:
            assert self._select_keys is not None
            stored = self._rows(
                connection, self._select_keys, unresolved, len(self._key)
            )
            changes.resolve({changes.shape.key_of(row): row for row in stored})
        outcome = changes.outcome()
        if outcome.deleted:
            assert self._delete is not None
            for chunk in self._chunks(outcome.deleted, len(self._key)):
                connection.execute(self._delete, {"values": chunk})
        for rows in _by_columns(outcome.replaced):
            assert self._replace is not None
            self._replace.execute(connection, rows)
        for rows in _by_columns(outcome.updated):
            assert self._update is not None
            self._update.execute(connection, rows)
        for rows in _by_columns(outcome.inserted):
            self._insert.execute(connection, rows)

    def _matching(self, columns: Sequence[Column[Any]]) -> ColumnElement[bool]:
        """``columns`` is one of the values of the list bound as "values"."""
        if len(columns) == 1 and self._postgres:
            # One array parameter: one statement text, whatever the length.
            values = bindparam("values", type_=ARRAY(columns[0].type))
            matching: ColumnElement[bool] = columns[0] == any_(values)
            return matching
        target = columns[0] if len(columns) == 1 else tuple_(*columns)
        return target.in_(bindparam("values", expanding=True))

    def _chunks(self, values: list[Key], width: int) -> Iterator[list[Key]]:
        if self._postgres and width == 1:
            yield values
            return
        size = MAX_PARAMETERS // width
        for start in range(0, len(values), size):
            yield values[start : start + size]

    def _rows(
        self,
        connection: Connection,
        statement: Select[Any],
        values: list[Key],
        width: int,
    ) -> list[Row]:
        rows: list[Row] = []
        for chunk in self._chunks(values, width):
            result = connection.execute(statement, {"values": chunk})
            names = list(result.keys())
            rows.extend(dict(zip(names, row, strict=True)) for row in result)
        for name in self._naive_times:
            for row in rows:
                moment: datetime | None = row[name]
                if moment is not None:
                    row[name] = as_utc(moment)
        return rows


class _ManyRows:
    """An INSERT executed once for many rows, compiled once per set of
    columns. The rows' values go through the columns' bind processors (as
    SQLAlchemy would) column by column, straight to the driver: SQLAlchemy's
    per-row parameter handling cost as much as the database's work on the
    rows. On PostgreSQL new rows go in by COPY (a fraction of the client's
    and the server's work of one INSERT per row); the driver's executemany
    runs the rest. Neither passes through SQLAlchemy's statement events."""

    def __init__(self, statement: Insert | None, table: Table, *, copy: bool) -> None:
        """``statement`` None: an UPDATE by primary key of the given columns."""
        self.statement = statement
        self.table = table
        self.copy = copy
        self._plans: dict[tuple[str, frozenset[str]], _Plan] = {}

    def execute(self, connection: Connection, rows: list[Row]) -> None:
        dialect = connection.dialect
        key = (dialect.name, frozenset(rows[0]))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans.setdefault(key, self._plan(dialect, sorted(rows[0])))
        values = plan.values(rows)
        if plan.copy is None:
            connection.exec_driver_sql(plan.sql, values)
            return
        driver = connection.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(plan.copy) as copy:
            for row in values:
                copy.write_row(row)

    def _plan(self, dialect: Dialect, columns: list[str]) -> _Plan:
        if self.statement is None:
            compiled = _update_by_key(self.table, columns).compile(dialect=dialect)
        else:
            compiled = self.statement.compile(dialect=dialect, column_keys=columns)
        if dialect.positional:
            names = list(compiled.positiontup or ())
            statement = compiled.string
        else:
            # Positional placeholders spare the driver a dict per row.
            names = _PLACEHOLDER.findall(compiled.string)
            statement = _PLACEHOLDER.sub("%s", compiled.string)
        # An UPDATE's parameters are named after their columns, with a prefix.
        names = [name.removeprefix(_SET).removeprefix(_WHERE) for name in names]
        if sorted(names) != columns:
            raise AssertionError(f"unexpected parameters {names} for {columns}")
        copy = None
        if self.copy and dialect.name == "postgresql":
            copy = psycopg_sql.SQL("COPY {} ({}) FROM STDIN").format(
                psycopg_sql.Identifier(self.table.name),
                psycopg_sql.SQL(", ").join(map(psycopg_sql.Identifier, names)),
            )
        processors = [_bind_processor(self.table.c[name], dialect) for name in names]
        return _Plan(statement, copy, names, processors)


_SET, _WHERE = "set_", "where_"


def _update_by_key(table: Table, columns: list[str]) -> Update:
    """UPDATE of ``columns`` (the key's and others) of the row with a key."""
    key = [column for column in table.primary_key.columns]
    return (
        update(table)
        .where(*(column == bindparam(_WHERE + column.name) for column in key))
        .values(
            {
                name: bindparam(_SET + name)
                for name in columns
                if not table.c[name].primary_key
            }
        )
    )


_PLACEHOLDER = re.compile(r"(?<!%)%\((\w+)\)s")


@dataclass(frozen=True)
class _Plan:
    sql: str
    copy: psycopg_sql.Composed | None
    names: list[str]
    processors: Sequence[_Processor | None]

    def values(self, rows: list[Row]) -> list[tuple[Any, ...]]:
        """The rows' values, in the order of the statement's placeholders."""
        values = itemgetter(*self.names)
        columns = (
            zip(*map(values, rows), strict=True)
            if len(self.names) > 1
            else [[row[self.names[0]] for row in rows]]
        )
        processed = [
            column if processor is None else list(map(processor, column))
            for column, processor in zip(columns, self.processors, strict=True)
        ]
        return list(zip(*processed, strict=True))


def _bind_processor(column: Column[Any], dialect: Dialect) -> _Processor | None:
    """What SQLAlchemy does to a value of the column before the driver gets it.

    SQLite stores datetimes as text that SQLAlchemy formats field by field;
    ``isoformat`` (in C) writes the same text several times faster, which
    shows in a batch of thousands of rows: it is used when it gives the very
    text SQLAlchemy's own processor gives."""
    processor = column.type.dialect_impl(dialect).bind_processor(dialect)
    if (
        processor is None
        or dialect.name != "sqlite"
        or not isinstance(column.type, DateTime)
    ):
        return processor
    fallback = processor

    def as_sqlite_text(value: Any) -> Any:
        if type(value) is datetime:
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")
        return fallback(value)

    if all(as_sqlite_text(moment) == fallback(moment) for moment in _MOMENTS):
        return as_sqlite_text
    return processor


_Processor = Callable[[Any], Any]

# Moments that tell whether two ways of storing datetimes agree.
_MOMENTS = (
    datetime(2026, 12, 1, 21, 50, 48, 566788, tzinfo=UTC),
    datetime(1, 1, 1, 0, 0, 0),
    datetime(2030, 6, 30, 23, 59, 59, 0, tzinfo=timezone(timedelta(hours=-5))),
    datetime(999, 12, 31, 1, 2, 3, 4),
    None,
)


def _upsert(table: Table, dialect: str) -> Insert:
    """INSERT that replaces the row with the same primary key."""
    statement: postgresql.Insert | sqlite.Insert = (
        postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    )
    others = {
        column.name: statement.excluded[column.name]
        for column in table.columns
        if not column.primary_key
    }
    key = [column.name for column in table.primary_key.columns]
    if not others:
        return statement.on_conflict_do_nothing(index_elements=key)
    return statement.on_conflict_do_update(index_elements=key, set_=others)


def _by_columns(rows: list[Row]) -> Iterator[list[Row]]:
    """The rows in groups of the same columns (one executemany each)."""
    if not rows:
        return
    first = rows[0].keys()
    if all(row.keys() == first for row in rows):
        yield rows
        return
    groups: dict[frozenset[str], list[Row]] = {}
    for row in rows:
        groups.setdefault(frozenset(row), []).append(row)
    yield from groups.values()


_writers: dict[tuple[Table, str], TableWriter] = {}
_writers_lock = threading.Lock()


def writer_for(table: Table, dialect: str) -> TableWriter:
    """The (cached) writer of one physical table on one kind of database."""
    key = (table, dialect)
    writer = _writers.get(key)
    if writer is None:
        with _writers_lock:
            writer = _writers.setdefault(key, TableWriter(table, dialect))
    return writer
