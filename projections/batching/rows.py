"""A row as a batch holds it: its table's shape (columns, primary key) and its
values made storable on both engines."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from functools import cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Table

Row = dict[str, Any]
Key = Hashable
"""A row's primary key: the value of a one-column key, else a tuple in the
order of the key's columns."""

RowView = Mapping[str, Any]
"""A row as the batch has it so far (read-only)."""


class TableShape:
    """What the fold needs to know of a table: its columns and key columns
    (none for a table without a primary key, whose rows can only be inserted)."""

    __slots__ = ("_key_of", "columns", "key", "name")

    def __init__(self, table: Table) -> None:
        self.name = table.name
        self.columns = frozenset(column.name for column in table.columns)
        self.key = tuple(column.name for column in table.primary_key.columns)
        self._key_of = itemgetter(*self.key) if self.key else None

    def key_of(self, row: Mapping[str, Any]) -> Key:
        assert self._key_of is not None, f"{self.name} has no primary key"
        key: Key = self._key_of(row)
        return key

    def key_row(self, key: Key) -> Row:
        if len(self.key) == 1:
            return {self.key[0]: key}
        assert isinstance(key, tuple)
        return dict(zip(self.key, key, strict=True))


@cache
def shape_of(table: Table) -> TableShape:
    return TableShape(table)


# -- values as rows hold them ------------------------------------------------

_NUL = "\x00"
_REPLACEMENT = "\ufffd"


def storable(value: Any) -> Any:
    """The value as a read model stores it: text with NUL, which PostgreSQL
    cannot hold in text at all, gets U+FFFD in its place.

    The domain refuses control characters in new text, but events stored
    before it did (or by another writer) are still in the append-only log,
    and a view must be buildable from all of it: otherwise their events park
    as dead letters for good and no rebuild of the view can pass. Only NUL is
    replaced: the other control characters are storable, and views built
    before this kept them, so replacing them would make those views differ
    from their rebuilds."""
    if type(value) is str:
        return value.replace(_NUL, _REPLACEMENT) if _NUL in value else value
    if type(value) is tuple:
        return tuple(map(storable, value))
    return value


def holds_nul(values: Mapping[str, Any]) -> bool:
    return any(type(value) is str and _NUL in value for value in values.values())


def storable_row(values: Mapping[str, Any]) -> Row:
    return {name: storable(value) for name, value in values.items()}
