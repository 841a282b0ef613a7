"""A database that is unreachable, misnamed or refuses the user: the shop fails
within a few seconds with a ``DatabaseConnectionError`` naming host, port,
database and the server's reason, and never the password."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from application import Shop
from application.config import (
    COMMAND_TIMEOUT_VARIABLE,
    CONNECT_TIMEOUT_VARIABLE,
    Settings,
)
from application.databases import ConfigurationError
from bench.ports import free_port
from domain.errors import DatabaseConnectionError, ShopError
from tests.conftest import POSTGRES_URL, require_postgres

pytestmark = pytest.mark.postgres

PASSWORD = "s3cret-Pa55word"
CONNECT_TIMEOUT = 2.0
# A shop tries each of its services' connections once before giving up.
SLACK = 3.0


def url(
    *,
    host: str = "127.0.0.1",
    port: int = 5432,
    dbname: str = "test",
    user: str = "postgres",
) -> str:
    return f"postgresql://{user}:{PASSWORD}@{host}:{port}/{dbname}"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that takes TCP connections and never answers, as a server
    behind a broken network path or a hung host does."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server.getsockname()[1]


def refused(database_url: str) -> tuple[DatabaseConnectionError, float]:
    settings = replace(
        Settings.from_url(database_url), connect_timeout_seconds=CONNECT_TIMEOUT
    )
    started = time.monotonic()
    with pytest.raises(DatabaseConnectionError) as error:
        Shop(settings=settings, subscribers="workers")
    return error.value, time.monotonic() - started


def assert_names_everything_but_the_password(
    error: DatabaseConnectionError, *, host: str, port: int, dbname: str, reason: str
) -> None:
    message = str(error)
    assert isinstance(error, ShopError)
    assert "\n" not in message
    assert f"{host}:{port}" in message
    assert repr(dbname) in message
    assert reason in message.lower()
    assert (error.host, error.port, error.dbname) == (host, port, dbname)
    assert PASSWORD not in message
    assert PASSWORD not in repr(error.args)


def test_misnamed_database() -> None:
    require_postgres()
    error, took = refused(url(dbname="no_such_database"))
    assert_names_everything_but_the_password(
        error,
        host="127.0.0.1",
        port=5432,
        dbname="no_such_database",
        reason='database "no_such_database" does not exist',
    )
    assert error.refused
    assert took < 1.0 + SLACK


def test_unknown_user() -> None:
    require_postgres()
    error, took = refused(url(user="no_such_user"))
    assert_names_everything_but_the_password(
        error,
        host="127.0.0.1",
        port=5432,
        dbname="test",
        reason='role "no_such_user" does not exist',
    )
    assert error.user == "no_such_user"
    assert error.refused
    assert took < 1.0 + SLACK


def test_nothing_listening_on_the_port() -> None:
    port = free_port()
    error, took = refused(url(port=port))
    assert_names_everything_but_the_password(
        error, host="127.0.0.1", port=port, dbname="test", reason="connection refused"
    )
    assert not error.refused
    assert took < CONNECT_TIMEOUT + SLACK


def test_host_that_does_not_resolve() -> None:
    error, took = refused(url(host="no-such-host.invalid"))
    assert_names_everything_but_the_password(
        error,
        host="no-such-host.invalid",
        port=5432,
        dbname="test",
        reason="no-such-host.invalid",
    )
    assert took < CONNECT_TIMEOUT + SLACK


def test_server_that_never_answers(silent_server: int) -> None:
    error, took = refused(url(port=silent_server))
    assert_names_everything_but_the_password(
        error, host="127.0.0.1", port=silent_server, dbname="test", reason="timeout"
    )
    assert took < CONNECT_TIMEOUT + SLACK


def test_timeouts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONNECT_TIMEOUT_VARIABLE, raising=False)
    monkeypatch.delenv(COMMAND_TIMEOUT_VARIABLE, raising=False)
    assert Settings.from_url(POSTGRES_URL).connect_timeout_seconds == 5.0
    assert Settings.from_url(POSTGRES_URL).command_timeout_seconds == 10.0
    monkeypatch.setenv(CONNECT_TIMEOUT_VARIABLE, "3.5")
    monkeypatch.setenv(COMMAND_TIMEOUT_VARIABLE, "7")
    assert Settings.from_url(POSTGRES_URL).connect_timeout_seconds == 3.5
    assert Settings.from_url().command_timeout_seconds == 7.0


@pytest.mark.parametrize("value", ["soon", "0", "-1"])
def test_a_timeout_that_is_no_time_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(COMMAND_TIMEOUT_VARIABLE, value)
    with pytest.raises(ConfigurationError, match=COMMAND_TIMEOUT_VARIABLE):
        Settings.from_url(POSTGRES_URL)
