"""The database itself refuses to change or remove stored events.

These go round the application on purpose, with raw sqlite3 / psycopg
connections, as a careless script or a compromised tool would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager

import psycopg
import pytest
from psycopg import sql

from application import Settings, Shop
from application.persistence import APPEND_ONLY_MESSAGE
from tests.application.shop_testing import TEA, World, build_world
from tests.conftest import postgres_url

SERVICES = ["carts", "orders", "inventory"]

Row = tuple[object, ...]
Execute = Callable[[str], None]
"""Runs one statement against the service's event table, named ``{table}``."""


@contextmanager
def raw_event_table(
    settings: Settings, service: str
) -> Iterator[tuple[Execute, Callable[[], list[Row]]]]:
    """An ``execute`` for statements on the service's event table and a
    ``rows`` that reads the whole table, over a connection of their own."""
    if settings.engine == "sqlite":
        path = settings.data_dir / f"{service}.sqlite3"
        assert path.is_file()
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:

            def execute_sqlite(statement: str) -> None:
                conn.execute(statement.format(table="stored_events"))

            def rows_sqlite() -> list[Row]:
                return conn.execute(
                    "SELECT originator_id, originator_version, topic, state "
                    "FROM stored_events ORDER BY rowid"
                ).fetchall()

            yield execute_sqlite, rows_sqlite
        return

    assert settings.postgres is not None
    table = sql.Identifier(settings.postgres.schema, f"{service}_events")
    with psycopg.connect(settings.postgres.conninfo(), autocommit=True) as pg:

        def execute_postgres(statement: str) -> None:
            pg.execute(sql.SQL(statement).format(table=table))

        def rows_postgres() -> list[Row]:
            return pg.execute(
                sql.SQL(
                    "SELECT originator_id, originator_version, topic, state, "
                    "notification_id FROM {table} ORDER BY notification_id"
                ).format(table=table)
            ).fetchall()

        yield execute_postgres, rows_postgres


def refused_by_database(settings: Settings) -> type[Exception]:
    return sqlite3.IntegrityError if settings.engine == "sqlite" else psycopg.Error


@pytest.fixture
def world(shop: Shop) -> World:
    """Given events stored by every service."""
    world = build_world(shop)
    shop.cancel_order(world.order_id, "to have one more order event")
    return world


CHANGES = [
    "UPDATE {table} SET topic = 'tampered'",
    "UPDATE {table} SET originator_version = originator_version + 1000",
    "UPDATE {table} SET state = state WHERE originator_version = 1",
    "DELETE FROM {table}",
    "DELETE FROM {table} WHERE originator_version > 1",
]


@pytest.mark.parametrize("service", SERVICES)
def test_update_and_delete_of_stored_events_are_refused(
    settings: Settings, world: World, service: str
) -> None:
    with raw_event_table(settings, service) as (execute, rows):
        stored = rows()
        assert stored, "the given world stored no events for this service"

        for statement in CHANGES:
            with pytest.raises(
                refused_by_database(settings), match=APPEND_ONLY_MESSAGE
            ) as refused:
                execute(statement)
            if isinstance(refused.value, psycopg.Error):
                assert isinstance(refused.value, psycopg.errors.InsufficientPrivilege)

        assert rows() == stored


@pytest.mark.postgres
@pytest.mark.parametrize("service", SERVICES)
def test_truncate_of_stored_events_is_refused_on_postgres(
    postgres_schema: str, service: str
) -> None:
    settings = Settings.from_url(postgres_url(postgres_schema))
    with Shop(settings=settings, subscribers="workers") as shop:
        build_world(shop)

    with raw_event_table(settings, service) as (execute, rows):
        stored = rows()

        with pytest.raises(
            psycopg.errors.InsufficientPrivilege, match=APPEND_ONLY_MESSAGE
        ):
            execute("TRUNCATE {table}")

        assert rows() == stored


def test_the_shop_still_reads_what_the_refused_statements_left(
    settings: Settings, world: World
) -> None:
    for service in SERVICES:
        with raw_event_table(settings, service) as (execute, _rows):
            for change in ("UPDATE {table} SET topic = 'x'", "DELETE FROM {table}"):
                with pytest.raises(refused_by_database(settings)):
                    execute(change)

    shop = world.shop
    assert shop.get_stock(TEA).on_hand == 50
    assert shop.get_cart(world.cart_id).version == 2
    assert shop.get_order(world.order_id).status == "cancelled"


def test_new_events_are_still_appended_after_a_refused_change(
    settings: Settings, world: World
) -> None:
    with raw_event_table(settings, "inventory") as (execute, rows):
        with pytest.raises(refused_by_database(settings)):
            execute("DELETE FROM {table}")
        before = len(rows())

        world.shop.receive_stock(TEA, 5)

        assert len(rows()) == before + 1
