"""Where the event store lives, chosen by one setting.

``EVENTSHOP_DATABASE_URL`` (or the ``database_url`` argument) picks the engine:

* unset, or ``sqlite:///path/to/folder``: the embedded default, one SQLite file per
  service under a data folder (``./eventshop-data`` unless told otherwise);
* ``postgresql://user:password@host:port/dbname?schema=name``: one PostgreSQL
  database, each service with its own tables in ``schema`` (default ``public``).

Everything else (the services, the subscribers, the CLI) asks this module for an
eventsourcing environment and never looks at the URL itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

DATABASE_URL_VARIABLE = "EVENTSHOP_DATABASE_URL"
DATA_DIR_VARIABLE = "EVENTSHOP_DATA_DIR"
PAYMENT_TIMEOUT_VARIABLE = "EVENTSHOP_PAYMENT_TIMEOUT_SECONDS"
DEFAULT_DATA_DIR = Path("eventshop-data")

_SCHEMA_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,62}")

Engine = Literal["sqlite", "postgres"]


class ConfigurationError(ValueError):
    """The storage settings cannot be used as given."""


@dataclass(frozen=True)
class PostgresLocation:
    host: str
    port: int
    user: str
    password: str
    dbname: str
    schema: str = "public"

    def conninfo(self, dbname: str | None = None) -> str:
        """A libpq connection string, for tools that connect on their own."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname or self.dbname,
        )


@dataclass(frozen=True)
class Settings:
    """Storage settings shared by every service of one shop."""

    engine: Engine
    data_dir: Path = DEFAULT_DATA_DIR
    postgres: PostgresLocation | None = None
    # Small pools: a shop opens one per service, and PostgreSQL allows 100
    # connections by default across every process on the machine.
    pool_size: int = 2
    pool_max_overflow: int = 6
    lock_timeout_seconds: int = 30
    # How long a confirmed order may stay unpaid before it is cancelled.
    payment_timeout: timedelta = timedelta(minutes=30)
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_url(
        cls, database_url: str | None = None, *, data_dir: str | Path | None = None
    ) -> Settings:
        """Reads the URL (or the environment) and returns validated settings.
        A ``data_dir`` without a URL means SQLite in that folder, whatever the
        environment says."""
        settings = cls._storage(database_url, data_dir)
        payment_timeout = _payment_timeout_from_environment()
        if payment_timeout is not None:
            settings = replace(settings, payment_timeout=payment_timeout)
        return settings

    @classmethod
    def _storage(
        cls, database_url: str | None, data_dir: str | Path | None
    ) -> Settings:
        if database_url is None and data_dir is not None:
            return cls(engine="sqlite", data_dir=Path(data_dir))
        url = database_url or os.environ.get(DATABASE_URL_VARIABLE) or ""
        if data_dir is not None and not url.startswith("sqlite:"):
            raise ConfigurationError("a data folder only applies to SQLite")
        if not url or url.startswith("sqlite:"):
            return cls(engine="sqlite", data_dir=_sqlite_dir(url, data_dir))
        if url.startswith(("postgresql:", "postgres:")):
            return cls(engine="postgres", postgres=_postgres_location(url))
        raise ConfigurationError(
            f"unsupported database URL {url!r}: use sqlite:///folder or postgresql://..."
        )

    def service_env(self, service_name: str) -> dict[str, str]:
        """The eventsourcing environment of one service (an application)."""
        env: dict[str, str] = {
            "PERSISTENCE_MODULE": _PERSISTENCE_MODULES[self.engine],
        }
        if self.engine == "sqlite":
            self.data_dir.mkdir(parents=True, exist_ok=True)
            env["SQLITE_DBNAME"] = str(
                self.data_dir / f"{service_name.lower()}.sqlite3"
            )
            env["SQLITE_LOCK_TIMEOUT"] = str(self.lock_timeout_seconds)
        else:
            pg = self.postgres
            assert pg is not None
            env.update(
                POSTGRES_HOST=pg.host,
                POSTGRES_PORT=str(pg.port),
                POSTGRES_USER=pg.user,
                POSTGRES_PASSWORD=pg.password,
                POSTGRES_DBNAME=pg.dbname,
                POSTGRES_SCHEMA=pg.schema,
                POSTGRES_POOL_SIZE=str(self.pool_size),
                POSTGRES_MAX_OVERFLOW=str(self.pool_max_overflow),
                POSTGRES_LOCK_TIMEOUT=str(self.lock_timeout_seconds),
                POSTGRES_PRE_PING="y",
            )
        env.update(self.extra_env)
        return env

    def database_url(self) -> str:
        """The URL that gives another process these storage settings."""
        if self.engine == "sqlite":
            return f"sqlite:///{self.data_dir.resolve()}"
        pg = self.postgres
        assert pg is not None
        credentials = quote(pg.user, safe="")
        if pg.password:
            credentials += ":" + quote(pg.password, safe="")
        return (
            f"postgresql://{credentials}@{pg.host}:{pg.port}/{quote(pg.dbname)}"
            f"?schema={pg.schema}"
        )

    def describe(self) -> str:
        """Where the data is, without the password."""
        if self.engine == "sqlite":
            return f"SQLite files under {self.data_dir.resolve()}"
        pg = self.postgres
        assert pg is not None
        return (
            f"PostgreSQL {pg.user}@{pg.host}:{pg.port}/{pg.dbname} schema {pg.schema}"
        )


_PERSISTENCE_MODULES: dict[Engine, str] = {
    "sqlite": "application.persistence.sqlite:SQLiteFactory",
    "postgres": "application.persistence.postgres:PostgresFactory",
}


def _payment_timeout_from_environment() -> timedelta | None:
    """``EVENTSHOP_PAYMENT_TIMEOUT_SECONDS`` (so worker processes can share a
    shop's timing without code)."""
    raw = os.environ.get(PAYMENT_TIMEOUT_VARIABLE)
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigurationError(
            f"{PAYMENT_TIMEOUT_VARIABLE}={raw!r} is not a number of seconds"
        ) from None
    if not 0 < seconds < 10**9:
        raise ConfigurationError(f"{PAYMENT_TIMEOUT_VARIABLE} must be positive")
    return timedelta(seconds=seconds)


def _sqlite_dir(url: str, data_dir: str | Path | None) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    if url:
        path = url.removeprefix("sqlite:").removeprefix("//")
        if not path or path == "/":
            raise ConfigurationError(f"{url!r} names no folder: use sqlite:///folder")
        # Like SQLAlchemy: sqlite:///rel/dir is relative, sqlite:////abs/dir absolute.
        return Path(path[1:] if path.startswith("/") else path)
    return Path(os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR)


def _postgres_location(url: str) -> PostgresLocation:
    parts = urlsplit(url)
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise ConfigurationError(f"{_redacted(url)} names no database")
    # keep_blank_values: "?schema=" is a mistake to report, not a request for public.
    query = parse_qs(parts.query, keep_blank_values=True)
    schema = query.get("schema", ["public"])[-1]
    if _SCHEMA_PATTERN.fullmatch(schema) is None:
        raise ConfigurationError(f"schema {schema!r} is not a plain lower-case name")
    try:
        port = parts.port or 5432
    except ValueError:
        raise ConfigurationError(f"{_redacted(url)} has a bad port") from None
    return PostgresLocation(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or os.environ.get("USER", "postgres")),
        password=unquote(parts.password or ""),
        dbname=dbname,
        schema=schema,
    )


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
