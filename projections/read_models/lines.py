"""A read model's order lines, one table row a line: the table and reading it.

Carts and orders keep their lines alike (an owner's id, the SKU, quantity,
unit price and the line's position), so both declare and read them here.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Row,
    String,
    Table,
    Uuid,
    select,
)

from domain.values import Line


def line_table(name: str, metadata: MetaData, owner: str) -> Table:
    """A table of lines owned by ``owner`` (a UUID column), one row per SKU,
    listed by ``position``."""
    return Table(
        name,
        metadata,
        Column(owner, Uuid, nullable=False),
        Column("sku", String(64), nullable=False),
        Column("quantity", Integer, nullable=False),
        Column("unit_price", Numeric(12, 2), nullable=False),
        Column("position", Integer, nullable=False),
        PrimaryKeyConstraint(owner, "sku"),
    )


def lines_of(
    connection: Connection, lines: Table, owner: str, owner_ids: Sequence[UUID]
) -> dict[UUID, tuple[Line, ...]]:
    """The lines of each of ``owner_ids`` that has any, by position, in one
    query (owners without lines are left out)."""
    if not owner_ids:
        return {}
    owner_column = lines.c[owner]
    found: dict[UUID, list[Line]] = {}
    for row in connection.execute(
        select(lines)
        .where(owner_column.in_(owner_ids))
        .order_by(owner_column, lines.c.position)
    ):
        found.setdefault(row._mapping[owner], []).append(_line(row))
    return {owner_id: tuple(owned) for owner_id, owned in found.items()}


def _line(row: Row[tuple[object, ...]]) -> Line:
    return Line(sku=row.sku, quantity=row.quantity, unit_price=row.unit_price)
