"""Comparing two generations of a projection, as a rebuild does before it
switches readers: each table's row count and order-independent checksum, and
the first rows they do not agree on."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import (
    Column,
    Connection,
    Inspector,
    Table,
    exists,
    func,
    inspect,
    select,
    table,
)

from projections.read_model import ReadModel, generation_tables
from projections.store.registry import ActiveGeneration

# Rows fetched at a time while a table's checksum is computed.
CHECKSUM_CHUNK_ROWS = 2_000

CHECKSUM_MODULUS = 2**64


def checksums(
    projection: type[ReadModel], generation: int, connection: Connection
) -> dict[str, tuple[int, int]]:
    """(row count, order-independent checksum) of each table of a generation."""
    return {
        name: table_checksum(connection, table)
        for name, table in generation_tables(projection, generation).items()
    }


def table_checksum(connection: Connection, table: Table) -> tuple[int, int]:
    """(row count, order-independent checksum) of one table: the sum of a
    hash of each row, so equal multisets of rows agree whatever order the
    database returns them in. PostgreSQL sums in the server (a quarter of
    an audit index's verified rebuild went to reading its rows back);
    SQLite's rows are read in chunks and hashed here."""
    if connection.dialect.name == "postgresql":
        return _server_checksum(connection, table)
    count = 0
    digest = 0
    # The driver's own values, not SQLAlchemy's: both generations sit in
    # one database with the same column types, so equal rows read back
    # equal, and skipping the result processing (UUIDs, times) was 40 % of
    # a rebuild of the orders view.
    rows = connection.exec_driver_sql(
        str(select(table).compile(dialect=connection.dialect)),
        execution_options={"yield_per": CHECKSUM_CHUNK_ROWS},
    )
    for row in rows:
        count += 1
        digest = (digest + zlib.crc32(repr(tuple(row)).encode())) % CHECKSUM_MODULUS
    return count, digest


def _server_checksum(connection: Connection, table: Table) -> tuple[int, int]:
    """What :func:`table_checksum` computes, summed by PostgreSQL: a 64-bit
    hash of each row's text form. Both generations are compared in one
    database with the same column types, so equal rows have equal text."""
    name = connection.dialect.identifier_preparer.format_table(table)
    row = connection.exec_driver_sql(
        "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) "
        f"FROM {name} AS t"
    ).one()
    return int(row[0]), int(row[1]) % CHECKSUM_MODULUS


@dataclass(frozen=True)
class RowDifference:
    """A row the two generations do not agree on, named by its primary key."""

    key: tuple[object, ...]
    kind: Literal["changed", "only in live", "only in rebuilt"]


@dataclass(frozen=True)
class TableComparison:
    """One table of the projection in the live and the rebuilt generation.

    Checksums are None when the live generation was built by another version
    of the projection: then its tables differ by design and only the row
    counts are shown (``live_rows`` is None if it has no such table)."""

    table: str
    live_rows: int | None
    rebuilt_rows: int
    live_checksum: int | None
    rebuilt_checksum: int | None
    differences: tuple[RowDifference, ...]
    """Up to the ``max_differences`` first differing rows, by key order."""

    @property
    def agrees(self) -> bool:
        return (
            self.live_checksum is not None
            and self.live_rows == self.rebuilt_rows
            and self.live_checksum == self.rebuilt_checksum
        )


def generations_agree(
    live_version: int, version: int, tables: Sequence[TableComparison]
) -> bool:
    """Both generations hold the same rows (never, across versions)."""
    return live_version == version and all(comparison.agrees for comparison in tables)


def compare_generations(
    projection: type[ReadModel],
    live: ActiveGeneration,
    generation: int,
    connection: Connection,
    *,
    max_differences: int,
) -> tuple[TableComparison, ...]:
    """Each table of ``generation`` (built by this code's ``projection``)
    against the same table of the ``live`` generation, in the caller's
    transaction; up to ``max_differences`` differing rows a table."""
    live_tables = generation_tables(projection, live.generation)
    rebuilt_tables = generation_tables(projection, generation)
    rebuilt_sums = checksums(projection, generation, connection)
    inspector = inspect(connection)
    existing = set(inspector.get_table_names())
    comparisons = []
    for name, (rebuilt_rows, rebuilt_checksum) in rebuilt_sums.items():
        live_table = live_tables[name]
        if live_table.name not in existing:
            live_rows: int | None = None
            live_checksum: int | None = None
        elif live.version != projection.version or _stored_columns(
            inspector, live_table
        ) != {column.name for column in live_table.columns}:
            # Another version's table (or one changed without a new version):
            # its columns are not the ones this code declares.
            live_rows, live_checksum = _count(connection, live_table.name), None
        else:
            live_rows, live_checksum = table_checksum(connection, live_table)
        differences: tuple[RowDifference, ...] = ()
        if live_checksum is not None and (live_rows, live_checksum) != (
            rebuilt_rows,
            rebuilt_checksum,
        ):
            differences = _differing_rows(
                connection, live_table, rebuilt_tables[name], max_differences
            )
        comparisons.append(
            TableComparison(
                table=name,
                live_rows=live_rows,
                rebuilt_rows=rebuilt_rows,
                live_checksum=live_checksum,
                rebuilt_checksum=rebuilt_checksum,
                differences=differences,
            )
        )
    return tuple(comparisons)


def _stored_columns(inspector: Inspector, table_: Table) -> set[str]:
    return {column["name"] for column in inspector.get_columns(table_.name)}


def _count(connection: Connection, table_name: str) -> int:
    count: int = connection.execute(
        select(func.count()).select_from(table(table_name))
    ).scalar_one()
    return count


def _differing_rows(
    connection: Connection, live: Table, rebuilt: Table, limit: int
) -> tuple[RowDifference, ...]:
    """The first ``limit`` keys (in key order) of rows that are not the same in
    both tables; a key with a row in both is "changed"."""
    live_key = _key_columns(live)
    rebuilt_key = _key_columns(rebuilt)
    only_live = _first_keys(connection, live, rebuilt, live_key, limit)
    only_rebuilt = _first_keys(connection, rebuilt, live, rebuilt_key, limit)
    differences: dict[tuple[object, ...], RowDifference] = {}
    for key in only_live:
        kind: Literal["changed", "only in live", "only in rebuilt"] = (
            "changed" if _has_key(connection, rebuilt_key, key) else "only in live"
        )
        differences[key] = RowDifference(key, kind)
    for key in only_rebuilt:
        if key not in differences:
            kind = (
                "changed" if _has_key(connection, live_key, key) else "only in rebuilt"
            )
            differences[key] = RowDifference(key, kind)
    ordered = sorted(
        differences.values(),
        key=lambda difference: tuple(str(part) for part in difference.key),
    )
    return tuple(ordered[:limit])


def _key_columns(table_: Table) -> list[Column[object]]:
    key = list(table_.primary_key.columns)
    return key or list(table_.columns)


def _first_keys(
    connection: Connection,
    rows_of: Table,
    missing_from: Table,
    key: Sequence[Column[object]],
    limit: int,
) -> list[tuple[object, ...]]:
    """Keys of rows of ``rows_of`` that ``missing_from`` has no identical copy of."""
    missing = select(*rows_of.columns).except_(select(*missing_from.columns)).subquery()
    key_columns = [missing.c[column.name] for column in key]
    return [
        tuple(row)
        for row in connection.execute(
            select(*key_columns).order_by(*key_columns).limit(limit)
        )
    ]


def _has_key(
    connection: Connection, key: Sequence[Column[object]], value: tuple[object, ...]
) -> bool:
    condition = exists().where(
        *(column == part for column, part in zip(key, value, strict=True))
    )
    found: bool = connection.execute(select(condition)).scalar_one()
    return found
