"""Helpers for the hash-chain tests: a shop with events in every log, and a
superuser's way round the append-only protection of the event tables.

Named ``chain_testing`` because every module basename under ``tests/`` must be
unique.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Protocol

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow, class_row

from application import Settings, Shop
from application.audit.chain_verification import open_chain_store
from application.subscribers.chain_keeper import ChainKeeper
from projections.audit.chain import GENESIS, link

TEA = "TEA-SENCHA"
MUG = "MUG-01"


def fill_logs(shop: Shop, receipts: int = 6) -> None:
    """Given events in every service's log: products with several receipts,
    carts, and an order placed and confirmed."""
    shop.register_product(TEA, "Sencha green tea, 100 g", "6.20")
    shop.register_product(MUG, "Stoneware mug", "12.50")
    for _ in range(receipts):
        shop.receive_stock(TEA, 5)
    cart_id = shop.open_cart("customer-1")
    shop.add_to_cart(cart_id, TEA, 2)
    shop.add_to_cart(cart_id, MUG, 1)
    shop.checkout(cart_id)
    cart = shop.get_cart(cart_id)
    order_id = shop.orders.place_order(
        cart_id, cart.customer_id, list(cart.lines), cart.total
    )
    shop.orders.confirm(order_id)


def link_over_log(shop: Shop, service: str) -> bytes:
    """The last link of a chain over ``service``'s whole log, computed here."""
    chained = GENESIS
    stored = shop.services[service].recorder.select_notifications(
        0, 10_000, inclusive_of_start=False
    )
    for notification in stored:
        chained = link(chained, notification)
    return chained


@contextmanager
def keeper_of(shop: Shop, service: str) -> Iterator[ChainKeeper]:
    """A keeper of ``service``'s chain, in a chain store of its own."""
    chains = open_chain_store(shop.settings)
    try:
        yield ChainKeeper(shop.services[service], chains)
    finally:
        chains.store.engine.dispose()


@dataclass(frozen=True)
class StoredRow:
    position: int
    originator_id: uuid.UUID
    originator_version: int
    topic: str
    state: bytes


class Tampering(Protocol):
    """What a database superuser can do to an event table once its append-only
    triggers are out of the way."""

    def rows(self) -> list[StoredRow]: ...

    def set_state(self, position: int, state: bytes) -> None: ...

    def set_topic(self, position: int, topic: str) -> None: ...

    def set_version(self, position: int, version: int) -> None: ...

    def delete(self, position: int) -> None: ...

    def insert(self, row: StoredRow) -> None:
        """Stores ``row`` at its own position (which must be free)."""


class _SQLiteTampering:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def rows(self) -> list[StoredRow]:
        return [
            StoredRow(position, uuid.UUID(originator_id), version, topic, state)
            for position, originator_id, version, topic, state in (
                self.connection.execute(
                    "SELECT rowid, originator_id, originator_version, topic, state"
                    " FROM stored_events ORDER BY rowid"
                )
            )
        ]

    def _change(self, statement: str, value: object, position: int) -> None:
        changed = self.connection.execute(statement, (value, position))
        assert changed.rowcount == 1

    def set_state(self, position: int, state: bytes) -> None:
        self._change(
            "UPDATE stored_events SET state = ? WHERE rowid = ?", state, position
        )

    def set_topic(self, position: int, topic: str) -> None:
        self._change(
            "UPDATE stored_events SET topic = ? WHERE rowid = ?", topic, position
        )

    def set_version(self, position: int, version: int) -> None:
        self._change(
            "UPDATE stored_events SET originator_version = ? WHERE rowid = ?",
            version,
            position,
        )

    def delete(self, position: int) -> None:
        deleted = self.connection.execute(
            "DELETE FROM stored_events WHERE rowid = ?", (position,)
        )
        assert deleted.rowcount == 1

    def insert(self, row: StoredRow) -> None:
        self.connection.execute(
            "INSERT INTO stored_events"
            " (rowid, originator_id, originator_version, topic, state)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                row.position,
                row.originator_id.hex,
                row.originator_version,
                row.topic,
                row.state,
            ),
        )


class _PostgresTampering:
    def __init__(self, connection: psycopg.Connection[TupleRow], table: sql.Identifier):
        self.connection = connection
        self.table = table

    def rows(self) -> list[StoredRow]:
        with self.connection.cursor(row_factory=class_row(StoredRow)) as cursor:
            cursor.execute(
                sql.SQL(
                    "SELECT notification_id AS position, originator_id,"
                    " originator_version, topic, state"
                    " FROM {table} ORDER BY notification_id"
                ).format(table=self.table)
            )
            return cursor.fetchall()

    def _change(self, column: str, value: object, position: int) -> None:
        changed = self.connection.execute(
            sql.SQL(
                "UPDATE {table} SET {column} = %s WHERE notification_id = %s"
            ).format(table=self.table, column=sql.Identifier(column)),
            (value, position),
        )
        assert changed.rowcount == 1

    def set_state(self, position: int, state: bytes) -> None:
        self._change("state", state, position)

    def set_topic(self, position: int, topic: str) -> None:
        self._change("topic", topic, position)

    def set_version(self, position: int, version: int) -> None:
        self._change("originator_version", version, position)

    def delete(self, position: int) -> None:
        deleted = self.connection.execute(
            sql.SQL("DELETE FROM {table} WHERE notification_id = %s").format(
                table=self.table
            ),
            (position,),
        )
        assert deleted.rowcount == 1

    def insert(self, row: StoredRow) -> None:
        self.connection.execute(
            sql.SQL(
                "INSERT INTO {table} (notification_id, originator_id,"
                " originator_version, topic, state) VALUES (%s, %s, %s, %s, %s)"
            ).format(table=self.table),
            (
                row.position,
                row.originator_id,
                row.originator_version,
                row.topic,
                row.state,
            ),
        )


@contextmanager
def tampering(settings: Settings, service: str) -> Iterator[Tampering]:
    """The service's event table as a superuser sees it with the append-only
    protection switched off (for this connection only on PostgreSQL; on
    SQLite the triggers are dropped and created again afterwards)."""
    if settings.engine == "sqlite":
        path = settings.data_dir / f"{service.lower()}.sqlite3"
        assert path.is_file()
        with closing(sqlite3.connect(path, isolation_level=None)) as connection:
            triggers = connection.execute(
                "SELECT name, sql FROM sqlite_master"
                " WHERE type = 'trigger' AND tbl_name = 'stored_events'"
            ).fetchall()
            assert {name for name, _ in triggers} == {
                "stored_events_refuse_update",
                "stored_events_refuse_delete",
            }
            connection.execute("DROP TRIGGER stored_events_refuse_update")
            connection.execute("DROP TRIGGER stored_events_refuse_delete")
            try:
                yield _SQLiteTampering(connection)
            finally:
                for _, statement in triggers:
                    connection.execute(statement)
        return
    assert settings.postgres is not None
    table = sql.Identifier(settings.postgres.schema, f"{service.lower()}_events")
    with psycopg.connect(settings.postgres.conninfo(), autocommit=True) as connection:
        # Only a superuser may; it switches off ordinary triggers for this
        # session alone, so the shop's own connections are still refused.
        connection.execute("SET session_replication_role = replica")
        yield _PostgresTampering(connection, table)
