"""Comparing two generations of a projection: the row count and an
order-independent checksum of each of their tables."""

from __future__ import annotations

import zlib

from sqlalchemy import Connection, Table, select

from projections.read_model import ReadModel, generation_tables

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
