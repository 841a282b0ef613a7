"""Shared fixtures: every storage-touching test runs on SQLite and on PostgreSQL.

PostgreSQL tests connect to ``$EVENTSHOP_TEST_POSTGRES_URL`` (default: the local
``test`` database) and give each test a schema of its own, dropped afterwards.
``EVENTSHOP_TEST_POSTGRES=required`` (CI) turns "server not reachable" from a
skip into a failure; ``=skip`` skips them without trying.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from application import Shop
from application.config import (
    BROKER_FED_VARIABLE,
    COMMAND_TIMEOUT_VARIABLE,
    CONNECT_TIMEOUT_VARIABLE,
    DATABASE_URL_VARIABLE,
    IDEMPOTENCY_TTL_VARIABLE,
    NATS_URL_VARIABLE,
    PAYMENT_TIMEOUT_VARIABLE,
    STORAGE_PARTS,
    Settings,
    part_url_variable,
)
from application.databases import DATA_DIR_VARIABLE
from application.persistence.encryption import CIPHER_VARIABLES
from tests.application.shop_testing import World, build_world

POSTGRES_MODE = os.environ.get("EVENTSHOP_TEST_POSTGRES", "auto")
POSTGRES_URL = os.environ.get(
    "EVENTSHOP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@cache
def postgres_unavailable_reason() -> str | None:
    """None if the test server answers, else why not."""
    if POSTGRES_MODE == "skip":
        return "EVENTSHOP_TEST_POSTGRES=skip"
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return f"PostgreSQL at {POSTGRES_URL} not reachable: {error}".strip()
    return None


def require_postgres() -> None:
    reason = postgres_unavailable_reason()
    if reason is None:
        return
    if POSTGRES_MODE == "required":
        pytest.fail(f"EVENTSHOP_TEST_POSTGRES=required but {reason}", pytrace=False)
    pytest.skip(reason)


@contextmanager
def temporary_postgres_schema() -> Iterator[str]:
    """A fresh, empty schema in the test database, dropped at the end of the block
    (for fixtures of a wider scope than one test)."""
    require_postgres()
    schema = f"es_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield schema
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema))
            )


@contextmanager
def temporary_postgres_databases(count: int) -> Iterator[list[str]]:
    """``count`` fresh databases on the test server (URLs), dropped at the end
    of the block, for shops whose services each have a database of their own."""
    require_postgres()
    names = [f"es_test_db_{uuid.uuid4().hex[:16]}" for _ in range(count)]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = urlsplit(POSTGRES_URL)
    try:
        yield [urlunsplit(base._replace(path=f"/{name}")) for name in names]
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            for name in names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(name)
                    )
                )


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A fresh, empty schema in the test database, dropped after the test."""
    with temporary_postgres_schema() as schema:
        yield schema


def postgres_url(schema: str) -> str:
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}schema={schema}"


ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
"""The engines every storage-touching fixture is parametrized with."""


@contextmanager
def settings_on(engine: str, data_dir: Path) -> Iterator[Settings]:
    """Storage settings on ``engine`` for a fixture wider than one test: a
    SQLite folder, or a temporary PostgreSQL schema dropped afterwards."""
    if engine == "sqlite":
        yield Settings.from_url(data_dir=data_dir)
        return
    with temporary_postgres_schema() as schema:
        yield Settings.from_url(postgres_url(schema))


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    engine_name: str = request.param
    return engine_name


@pytest.fixture
def settings(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Storage settings for one test, on the engine the test is parametrized with."""
    if engine == "sqlite":
        return Settings.from_url(data_dir=tmp_path / "data")
    schema: str = request.getfixturevalue("postgres_schema")
    return Settings.from_url(postgres_url(schema))


@pytest.fixture(autouse=True)
def _no_shop_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeps a developer's EVENTSHOP_* variables out of the tests, so that
    ``Shop()`` and ``Settings.from_url()`` start from the documented defaults;
    tests of those variables set them themselves."""
    for variable in (
        DATABASE_URL_VARIABLE,
        DATA_DIR_VARIABLE,
        PAYMENT_TIMEOUT_VARIABLE,
        COMMAND_TIMEOUT_VARIABLE,
        CONNECT_TIMEOUT_VARIABLE,
        IDEMPOTENCY_TTL_VARIABLE,
        NATS_URL_VARIABLE,
        BROKER_FED_VARIABLE,
        *CIPHER_VARIABLES,
        *(part_url_variable(part) for part in STORAGE_PARTS),
    ):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def shop(settings: Settings) -> Iterator[Shop]:
    """A shop on the test's engine, closed after the test.

    Only the event-sourced core: no subscriber runs in this process (the
    "workers" hosting), so nothing writes behind a test's back, and closing does
    not wait for idle runners."""
    with Shop(settings=settings, subscribers="workers") as opened:
        yield opened


@pytest.fixture(scope="module", params=ENGINES)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One shop per engine for a whole module, with something of everything in
    it, for tests that each check they wrote nothing (so they may share it). No
    subscriber runs in this process, so nothing writes behind their backs."""
    with (
        settings_on(request.param, tmp_path_factory.mktemp("data")) as settings,
        Shop(settings=settings, subscribers="workers") as shop,
    ):
        yield build_world(shop)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        help="also run the long variants of the fault tests (marked 'long')",
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if config.getoption("--long"):
        return
    skip_long = pytest.mark.skip(reason="a long variant: run with --long")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip_long)
