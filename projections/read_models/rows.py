"""Turning a row of a read model's table into the frozen dataclass its queries
return: one place for the column-to-field copy and the UTC rule, so that a
field added to a row type and its table needs no third edit."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Row

from projections.store.engine import as_utc

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

RowType = TypeVar("RowType", bound="DataclassInstance")


def row_as(kind: type[RowType], row: Row[Any], **given: object) -> RowType:
    """A ``kind`` whose fields are the row's columns of the same names (times
    in UTC, as SQLite hands them back without a zone), except those ``given``
    (what is not a column as it is: lines read from their own table, a list
    stored as text)."""
    columns = row._mapping
    values = {
        name: given[name] if name in given else _from_column(columns[name])
        for name in _field_names(kind)
    }
    return kind(**values)


@cache
def _field_names(kind: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(field.name for field in fields(kind) if field.init)


def _from_column(value: object) -> object:
    return as_utc(value) if isinstance(value, datetime) else value
