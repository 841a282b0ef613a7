"""A batch's row changes, folded per key in memory before any SQL runs.

Read-model handlers record here what their event does to their tables' rows:
insert a row, update columns, add to counters, keep the latest of a column,
delete. Everything the events of a batch do to one row folds into one change,
so the framework writes a batch of any size with a few multi-row statements per
table (``projections.batching.flush``).

A handler reads only what the batch loaded before it ran (the rows its
projection declares in ``ReadModel.loads``) and what earlier events of the
same batch did. Reading any other row is a programming error
(:class:`NotLoadedError`), never a query per event.

Changes to a row that was not loaded are kept as a list of operations. If
they only set columns, they become one UPDATE of the row; else they are
played, in order, on the stored row, read when the batch is written: adding
to a row the table does not hold does nothing (as an UPDATE would), unless the
addition brings a ``default`` row to start from (a counter's first event).

Every value a handler hands over, keys included, passes
:func:`~projections.batching.rows.storable` on the way in, so the rows
written, the keys a batch looks up and a rebuild's rows agree on both engines.

Over 400 lines on purpose: ``TableChanges`` is one fold whose methods keep
one invariant together (each key's ``_Change``: its row, whether it is stored,
its pending operations, and the loaded groups that index it); split, each half
would have to know the other's state. What a row is (its table's shape and
its storable values) is in ``rows``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sqlalchemy import Table

from projections.batching.rows import (
    Key,
    Row,
    RowView,
    TableShape,
    holds_nul,
    shape_of,
    storable,
    storable_row,
)

_Operation = Callable[[Row, Mapping[str, Any]], None]
"""Changes a row in place."""


class NotLoadedError(LookupError):
    """A handler read a row that its batch did not load: the projection must
    declare the table and column in ``loads``."""


class DuplicateRowError(ValueError):
    """A handler inserted a row whose key is already in the table."""

    def __init__(self, table: str, key: Key) -> None:
        super().__init__(f"{table} already holds a row with key {key!r}")
        self.table = table
        self.key = key


# -- operations on a row ------------------------------------------------------


def _set(row: Row, values: Mapping[str, Any]) -> None:
    row.update(values)


def _add(row: Row, deltas: Mapping[str, Any]) -> None:
    for column, delta in deltas.items():
        row[column] = row[column] + delta


def _keep_latest(row: Row, values: Mapping[str, Any]) -> None:
    for column, value in values.items():
        current = row[column]
        if current is None or value > current:
            row[column] = value


def _only_sets(pending: list[tuple[_Operation, Mapping[str, Any], Any]]) -> bool:
    return all(operation is _set for operation, _, _ in pending)


class _Change:
    """What a batch does to one row.

    ``row`` is the row as the batch leaves it (None: no row), when known;
    ``stored`` whether the table held the row before the batch (None: not
    known, but a delete was asked for); ``pending`` the operations to play on
    a stored row not loaded, None once known."""

    __slots__ = ("changed", "pending", "row", "stored")

    def __init__(
        self,
        row: Row | None,
        stored: bool | None,
        pending: list[tuple[_Operation, Mapping[str, Any], Any]] | None = None,
        *,
        changed: bool = True,
    ) -> None:
        self.row = row
        self.stored = stored
        self.pending = pending
        self.changed = changed


@dataclass(frozen=True)
class Outcome:
    """What a batch leaves to write to one table."""

    deleted: list[Key]
    """Keys of rows to delete (some may not be stored)."""
    inserted: list[Row]
    """New rows: their keys are not stored."""
    replaced: list[Row]
    """Whole rows that replace the stored ones (or fill a key the batch deleted)."""
    updated: list[Row]
    """Keys and the columns to set on their rows, if stored (rows that were
    not loaded and of which the batch only set columns)."""

    def __bool__(self) -> bool:
        return bool(self.deleted or self.inserted or self.replaced or self.updated)


class TableChanges:
    """The changes one batch makes to one table, keyed by primary key.

    A key is the value of a one-column primary key, or a tuple of the key's
    columns in order; ``update``, ``add``, ``keep_latest`` and ``delete`` also
    take a row that ``get`` or ``where`` returned."""

    def __init__(self, shape: TableShape, loaded_by: str | None = None) -> None:
        if loaded_by is not None and loaded_by not in shape.columns:
            raise ValueError(f"{shape.name} has no column {loaded_by!r} to load by")
        self.shape = shape
        self.loaded_by = loaded_by
        self._changes: dict[Key, _Change] = {}
        self._appended: list[Row] = []
        # The rows of each loaded group, by load column value: their keys (in
        # order), or the rows themselves in a table without a key.
        self._groups: dict[object, dict[Key, None]] = {}
        self._keyless_groups: dict[object, list[Row]] = {}
        self._group_in_key: int | None = (
            shape.key.index(loaded_by)
            if loaded_by is not None and loaded_by in shape.key
            else None
        )

    # -- what handlers do ------------------------------------------------------

    def insert(self, **row: Any) -> None:
        """Adds a new row; a key the table already holds is an error (at once
        if the row was loaded, else when the batch is written)."""
        self._check_columns(row)
        if holds_nul(row):
            row = storable_row(row)
        if not self.shape.key:
            self._appended.append(row)
            self._index(row)
            return
        key = self.shape.key_of(row)
        change = self._changes.get(key)
        if change is None:
            self._changes[key] = _Change(row, stored=False)
        elif change.pending is not None:
            # The operations before it did nothing if the row was not stored,
            # and if it was, the insert fails when the batch is written, as it
            # would have event by event.
            change.row, change.stored, change.pending = row, False, None
        elif change.row is not None:
            raise DuplicateRowError(self.shape.name, key)
        else:
            change.row = row
            change.changed = True
        self._index(row, key)

    def update(self, key: Key | RowView, /, **values: Any) -> None:
        """Sets columns of the row with this key; nothing if there is none."""
        self._check_columns(values, updating=True)
        self._operate(key, _set, values)

    def add(
        self,
        key: Key | RowView,
        /,
        *,
        default: Mapping[str, Any] | None = None,
        **deltas: Any,
    ) -> None:
        """Adds to numeric columns of the row with this key (in Python, so
        Decimals stay exact on SQLite). Without a row, ``default`` (the other
        columns) is the row to add to; with no default, nothing happens."""
        self._check_columns(deltas, updating=True)
        if default is not None:
            self._check_columns(default, updating=True)
        self._operate(key, _add, deltas, default)

    def keep_latest(self, key: Key | RowView, /, **values: Any) -> None:
        """Sets each column to the given value if it is later (greater) than
        the row's; nothing if there is no row."""
        self._check_columns(values, updating=True)
        self._operate(key, _keep_latest, values)

    def delete(self, key: Key | RowView, /) -> None:
        """Deletes the row with this key, if there is one."""
        change = self._change(self._key(key))
        if change.pending is not None:
            change.pending = None
            change.stored = None
        change.row = None
        change.changed = True

    def get(self, key: Key, /) -> RowView | None:
        """The row with this key as the batch has it so far, or None."""
        key = storable(key)
        change = self._changes.get(key)
        if change is not None and change.pending is None:
            return None if change.row is None else MappingProxyType(change.row)
        if change is None and self._knows_absent(key):
            return None
        raise NotLoadedError(
            f"the {self.shape.name} row {key!r} was not loaded for this batch "
            f"(declare {self.shape.name!r} in the projection's loads)"
        )

    def where(self, **column: object) -> list[RowView]:
        """The rows whose load column (see ``ReadModel.loads``) holds this
        value, as the batch has them so far: ``where(cart_id=cart_id)``."""
        ((name, value),) = column.items()
        value = storable(value)
        if name == self.loaded_by:
            if not self.shape.key:
                rows = self._keyless_groups.get(value)
                if rows is not None:
                    return [MappingProxyType(row) for row in rows]
            elif (keys := self._groups.get(value)) is not None:
                changes = self._changes
                if self._group_in_key is not None:
                    # The key says the group, and a key never changes.
                    return [
                        MappingProxyType(row)
                        for key in keys
                        if (row := changes[key].row) is not None
                    ]
                return [
                    MappingProxyType(row)
                    for key in keys
                    if (row := changes[key].row) is not None and row[name] == value
                ]
        raise NotLoadedError(
            f"{self.shape.name} rows with {name} = {value!r} were not loaded "
            f"for this batch (it loads by {self.loaded_by!r})"
        )

    def key_of(self, row: RowView) -> Key:
        return self.shape.key_of(row)

    # -- what the framework does -----------------------------------------------

    def load(self, rows: Iterable[Row], groups: Iterable[object]) -> None:
        """Takes in the stored rows of whole groups (every row whose load
        column holds one of ``groups``), before any handler runs."""
        for group in groups:
            if self.shape.key:
                self._groups.setdefault(group, {})
            else:
                self._keyless_groups.setdefault(group, [])
        for row in rows:
            if self.shape.key:
                key = self.shape.key_of(row)
                self._changes[key] = _Change(row, stored=True, changed=False)
                self._index(row, key)
            else:
                self._index(row)

    def unresolved(self) -> list[Key]:
        """Keys of rows changed without being loaded, other than only by
        setting columns (an UPDATE does that without reading the row)."""
        return [
            key
            for key, change in self._changes.items()
            if change.pending and not _only_sets(change.pending)
        ]

    def resolve(self, stored: Mapping[Key, Row]) -> None:
        """Plays the pending operations on the stored rows of
        :meth:`unresolved` keys (absent from ``stored``: not in the table)."""
        for key, change in self._changes.items():
            if change.pending is None or _only_sets(change.pending):
                continue
            row = stored.get(key)
            change.stored = row is not None
            for operation, values, default in change.pending:
                row = self._applied(key, row, operation, values, default)
            change.row, change.pending = row, None

    def outcome(self) -> Outcome:
        deleted: list[Key] = []
        inserted: list[Row] = list(self._appended)
        replaced: list[Row] = []
        updated: list[Row] = []
        for key, change in self._changes.items():
            if change.pending is not None:
                assert _only_sets(change.pending), "resolve() before outcome()"
                update = self.shape.key_row(key)
                for _, values, _ in change.pending:
                    update.update(values)
                updated.append(update)
                continue
            if not change.changed:
                continue
            if change.row is None:
                if change.stored is not False:
                    deleted.append(key)
            elif change.stored is False:
                inserted.append(change.row)
            else:
                replaced.append(change.row)
        return Outcome(deleted, inserted, replaced, updated)

    # -- inside ------------------------------------------------------------------

    def _operate(
        self,
        key: Key | RowView,
        operation: _Operation,
        values: Mapping[str, Any],
        default: Mapping[str, Any] | None = None,
    ) -> None:
        key = self._key(key)
        if holds_nul(values):
            values = storable_row(values)
        if default is not None and holds_nul(default):
            default = storable_row(default)
        change = self._change(key)
        if change.pending is not None:
            change.pending.append((operation, values, default))
            return
        row = change.row
        change.row = self._applied(key, row, operation, values, default)
        if change.row is not None and (
            change.row is not row or self.loaded_by in values
        ):
            self._index(change.row, key)
        change.changed = True

    def _applied(
        self,
        key: Key,
        row: Row | None,
        operation: _Operation,
        values: Mapping[str, Any],
        default: Mapping[str, Any] | None,
    ) -> Row | None:
        """The row after the operation. Without a row there is nothing to
        change, unless a default says what the row starts as."""
        if row is None:
            if default is None:
                return None
            row = {**self.shape.key_row(key), **default}
        operation(row, values)
        return row

    def _change(self, key: Key) -> _Change:
        change = self._changes.get(key)
        if change is None:
            if self._knows_absent(key):
                change = _Change(None, stored=False, changed=False)
            else:
                change = _Change(None, stored=None, pending=[])
            self._changes[key] = change
        return change

    def _key(self, key: Key | RowView) -> Key:
        if not self.shape.key:
            raise TypeError(
                f"{self.shape.name} has no primary key: its rows can only be inserted"
            )
        if isinstance(key, MappingProxyType):
            return self.shape.key_of(key)
        stored: Key = storable(key)
        return stored

    def _knows_absent(self, key: Key) -> bool:
        """Whether the key is in a loaded group (so, not being among the loaded
        rows, it is not stored)."""
        if self._group_in_key is None:
            return False
        group = key if len(self.shape.key) == 1 else key[self._group_in_key]  # type: ignore[index]
        return group in self._groups

    def _index(self, row: Row, key: Key = None) -> None:
        """Counts the row in its group, if the group was loaded (where() reads
        only those)."""
        if self.loaded_by is None:
            return
        group = row[self.loaded_by]
        if self.shape.key:
            keys = self._groups.get(group)
            if keys is not None:
                keys[key] = None
        else:
            rows = self._keyless_groups.get(group)
            if rows is not None:
                rows.append(row)

    def _check_columns(
        self, values: Mapping[str, Any], *, updating: bool = False
    ) -> None:
        if not values.keys() <= self.shape.columns:
            unknown = ", ".join(sorted(values.keys() - self.shape.columns))
            raise KeyError(f"{self.shape.name} has no column {unknown}")
        if updating and not values.keys().isdisjoint(self.shape.key):
            raise ValueError(f"the key of a {self.shape.name} row cannot change")


class Changes:
    """The row changes of one batch to one generation of a projection's
    tables, by template table name: ``changes["stock_levels"]``."""

    def __init__(self, tables: Mapping[str, Table], loads: Mapping[str, str]) -> None:
        unknown = loads.keys() - tables.keys()
        if unknown:
            raise ValueError(f"loads names unknown tables: {sorted(unknown)}")
        self._tables = {
            name: TableChanges(shape_of(table), loads.get(name))
            for name, table in tables.items()
        }

    def __getitem__(self, table: str) -> TableChanges:
        return self._tables[table]

    def items(self) -> Iterable[tuple[str, TableChanges]]:
        return self._tables.items()
