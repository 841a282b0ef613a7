"""Where one database is, read from its URL: a SQLite folder (the embedded
default) or a PostgreSQL database and schema.

A shop keeps each service's event store, and its views, in such a database:
all in one by default, or each where its own URL says (``application.config``
reads which from the settings and the environment)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

DATA_DIR_VARIABLE = "EVENTSHOP_DATA_DIR"
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
    # Never in a repr: settings are printed and logged.
    password: str = field(repr=False)
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
class Storage:
    """One database: a folder of SQLite files, or a PostgreSQL schema."""

    engine: Engine
    data_dir: Path = DEFAULT_DATA_DIR
    postgres: PostgresLocation | None = None

    @classmethod
    def from_url(cls, url: str, data_dir: str | Path | None = None) -> Storage:
        """The database ``url`` names; an empty one means SQLite (in
        ``data_dir``, else ``$EVENTSHOP_DATA_DIR``, else ``./eventshop-data``)."""
        if data_dir is not None and url and not url.startswith("sqlite:"):
            raise ConfigurationError("a data folder only applies to SQLite")
        if not url or url.startswith("sqlite:"):
            return cls(engine="sqlite", data_dir=_sqlite_dir(url, data_dir))
        if url.startswith(("postgresql:", "postgres:")):
            return cls(engine="postgres", postgres=_postgres_location(url))
        raise ConfigurationError(
            f"unsupported database URL {redact(url)!r}: "
            "use sqlite:///folder or postgresql://..."
        )

    def url(self) -> str:
        """The URL that names this database to another process."""
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

    def sqlite_file(self, name: str) -> Path:
        """The SQLite file of the part ``name`` (a service, the views), its
        folder made if missing."""
        assert self.engine == "sqlite"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir / f"{name.lower()}.sqlite3"


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
        raise ConfigurationError(f"{redact(url)} names no database")
    # keep_blank_values: "?schema=" is a mistake to report, not a request for public.
    query = parse_qs(parts.query, keep_blank_values=True)
    schema = query.get("schema", ["public"])[-1]
    if _SCHEMA_PATTERN.fullmatch(schema) is None:
        raise ConfigurationError(f"schema {schema!r} is not a plain lower-case name")
    try:
        port = parts.port or 5432
    except ValueError:
        raise ConfigurationError(f"{redact(url)} has a bad port") from None
    return PostgresLocation(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or os.environ.get("USER", "postgres")),
        password=unquote(parts.password or ""),
        dbname=dbname,
        schema=schema,
    )


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
_CONNINFO_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")
REDACTED = "***"


def redact(text: str, *secrets: str) -> str:
    """``text`` with every password hidden: in URLs (``scheme://user:***@``),
    in libpq connection strings (``password=***``) and wherever one of
    ``secrets`` appears, so that nothing eventshop shows (errors, status,
    logs, reprs) gives a password away."""
    text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", text)
    text = _CONNINFO_PASSWORD.sub(rf"\g<head>{REDACTED}", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
