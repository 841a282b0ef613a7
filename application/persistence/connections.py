"""Connections to PostgreSQL that fail fast and say why.

The library's datastore waits for its pool up to a fixed time (30 s by
default) and then says only "couldn't get a connection after 30.00 sec",
whatever the cause; while the server restarts, its pool reconnects with a
growing backoff, so commands kept waiting long after the server was back.

:class:`BudgetedDatastore` waits for a pooled connection only for what is
left of the current command's time budget (see ``budget``), or the connect
timeout outside one; when the pool has none to give because it cannot
connect, it connects by itself: that both tells the server's reason and
goes on as soon as the server is back. A refusal (no such database, no such
user, a wrong password) fails at once: waiting would not mend it.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from eventsourcing import persistence as es_persistence
from eventsourcing import postgres as es_postgres
from psycopg import Connection
from psycopg.rows import DictRow

from application.config import DEFAULT_POOL_MAX_IDLE_SECONDS
from application.databases import redact
from application.persistence import DatabaseUnreachableError
from application.persistence.budget import backoff, remaining

# How long to wait for the pool before looking at why it has nothing.
POOL_WAIT_SLICE_SECONDS = 0.5
FULL_POOL_WAIT_SECONDS = 1.5

# The server answered but will not take connections just now.
_NOT_YET = re.compile(
    r"starting up|shutting down|in recovery|too many|not yet accepting|"
    r"terminating connection",
    re.IGNORECASE,
)
_PREFIX = re.compile(
    r'^(connection failed: )?connection to server at "[^"]*"(, port \d+)? failed: '
)

# Order matters: the library's errors mirror psycopg's hierarchy.
_TRANSLATIONS: tuple[tuple[type[psycopg.Error], type[Exception]], ...] = (
    (psycopg.InterfaceError, es_persistence.InterfaceError),
    (psycopg.OperationalError, es_persistence.OperationalError),
    (psycopg.DataError, es_persistence.DataError),
    (psycopg.IntegrityError, es_persistence.IntegrityError),
    (psycopg.InternalError, es_persistence.InternalError),
    (psycopg.ProgrammingError, es_persistence.ProgrammingError),
    (psycopg.NotSupportedError, es_persistence.NotSupportedError),
    (psycopg.DatabaseError, es_persistence.DatabaseError),
    (psycopg.Error, es_persistence.PersistenceError),
)


def application_name(role: str) -> str:
    """What a connection of this process tells the server it is for
    (``pg_stat_activity.application_name``): ``eventshop:<role>:<pid>``, so
    that an operator (or a test) can count a process's connections by what
    they do: ``events`` (the services' pool), ``listen``, ``locks``,
    ``views``, ``schema``."""
    return f"eventshop:{role}:{os.getpid()}"


def server_reason(error: BaseException, password: str = "") -> str:
    """The gist of a connection failure, on one line, without secrets."""
    text = str(error).strip()
    first, _, rest = text.partition("\n")
    text = _PREFIX.sub("", first).replace("FATAL:  ", "").strip() or rest.strip()
    return redact(" ".join(text.split()), password)


def is_refusal(error: psycopg.OperationalError) -> bool:
    """Whether the server answered and refused us for good."""
    text = str(error)
    return "FATAL:" in text and _NOT_YET.search(text) is None


class BudgetedDatastore(es_postgres.PostgresDatastore):
    """A datastore whose connections come within the time budget."""

    def __init__(
        self,
        *args: Any,
        connect_timeout_seconds: float,
        command_timeout_seconds: float,
        max_idle_seconds: float = DEFAULT_POOL_MAX_IDLE_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.connect_timeout_seconds = connect_timeout_seconds
        self.command_timeout_seconds = command_timeout_seconds
        # Read when the pool opens (it is not open yet): connections a burst
        # needed are closed soon after it, not held for the library's 10 min.
        self.pool.max_idle = max_idle_seconds
        # Connections were lost lately, so the pool's may all be dead.
        self._troubled = False
        params = self.pool.kwargs
        assert isinstance(params, dict)
        params.update(
            # libpq counts whole seconds and at least 2.
            connect_timeout=max(2, math.ceil(connect_timeout_seconds)),
            # A server that vanished without closing the socket (a cable, a
            # crashed host) shows as a dead connection within seconds.
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            application_name=application_name("events"),
        )

    @classmethod
    def replacing(
        cls,
        datastore: es_postgres.PostgresDatastore,
        *,
        connect_timeout_seconds: float,
        command_timeout_seconds: float,
        max_idle_seconds: float = DEFAULT_POOL_MAX_IDLE_SECONDS,
        max_overflow: int | None = None,
    ) -> BudgetedDatastore:
        """The same store as the library's factory configured, budgeted
        (with ``max_overflow`` instead of the configured one, if given)."""
        pool = datastore.pool
        params = pool.kwargs
        assert isinstance(params, dict)
        budgeted = cls(
            dbname=params["dbname"],
            host=params["host"],
            port=params["port"],
            user=params["user"],
            password=params["password"],
            connect_timeout=connect_timeout_seconds,
            idle_in_transaction_session_timeout=(
                datastore.idle_in_transaction_session_timeout
            ),
            pool_size=pool.min_size,
            max_overflow=(
                pool.max_size - pool.min_size if max_overflow is None else max_overflow
            ),
            max_waiting=pool.max_waiting,
            conn_max_age=pool.max_lifetime,
            pre_ping=datastore.pre_ping,
            lock_timeout=datastore.lock_timeout,
            schema=datastore.schema,
            pool_open_timeout=datastore.pool_open_timeout,
            get_password_func=pool.get_password_func,
            single_row_tracking=datastore.single_row_tracking,
            originator_id_type=datastore.originator_id_type,
            enable_db_functions=datastore.enable_db_functions,
            connect_timeout_seconds=connect_timeout_seconds,
            command_timeout_seconds=command_timeout_seconds,
            max_idle_seconds=max_idle_seconds,
        )
        datastore.close()
        return budgeted

    @property
    def location(self) -> tuple[str, int, str, str]:
        params = self.pool.kwargs
        assert isinstance(params, dict)
        return (
            str(params["host"]),
            int(params["port"]),
            str(params["dbname"]),
            str(params["user"]),
        )

    @contextmanager
    def get_connection(self) -> Iterator[Connection[DictRow]]:
        conn, pooled = self._acquire()
        try:
            for info in self.psycopg_type_adapters.values():
                if not conn.adapters.types.get(info.oid):
                    psycopg.types.composite.register_composite(info, conn)
            yield conn
        except psycopg.Error as error:
            if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
                self._troubled = True
            for psycopg_class, library_class in _TRANSLATIONS:
                if isinstance(error, psycopg_class):
                    raise library_class(str(error)) from error
            raise
        finally:
            if pooled:
                self.pool.putconn(conn)
            else:
                conn.close()

    def _acquire(self) -> tuple[Connection[DictRow], bool]:
        """A connection, and whether it is the pool's; raises
        ``DatabaseUnreachableError`` when none comes within the budget."""
        started = time.monotonic()
        ends = started + remaining(self.connect_timeout_seconds)
        self._open_pool(ends)
        reason = "no connection became free"
        failures = 0
        while True:
            left = ends - time.monotonic()
            try:
                conn = self.pool.getconn(
                    timeout=max(0.01, min(left, POOL_WAIT_SLICE_SECONDS))
                )
            except psycopg_pool.PoolTimeout:
                pass
            else:
                self._troubled = False
                return conn, True
            if ends > time.monotonic() and self._may_connect_directly(
                waited=time.monotonic() - started
            ):
                try:
                    return self._connect_directly(ends - time.monotonic()), False
                except psycopg.OperationalError as error:
                    self._troubled = True
                    reason = server_reason(error, self._password)
                    if is_refusal(error):
                        raise self._unreachable(reason, started, refused=True) from None
                failures += 1
            left = ends - time.monotonic()
            if left <= 0:
                raise self._unreachable(reason, started, refused=False)
            time.sleep(min(left, backoff(failures)))

    def _open_pool(self, ends: float) -> None:
        """Opens the pool, if it is not yet, and waits (briefly) for its first
        connection: a client that asks before it is made has the pool make
        another (it grows for every waiting client), which then stays idle
        until the pool shrinks."""
        if not self.pool.closed:
            return
        self.pool.open(wait=False)
        until = min(ends, time.monotonic() + POOL_WAIT_SLICE_SECONDS)
        while time.monotonic() < until:
            stats = self.pool.get_stats()
            if stats.get("pool_available") or stats.get("connections_errors"):
                return
            time.sleep(0.001)

    def _may_connect_directly(self, waited: float) -> bool:
        """Whether to stop waiting for the pool. One short of connections
        cannot make them; a full one is busy, so it gets a while, unless
        connections were lost lately: then it counts the ones it is still
        trying to remake (after a restart, with a growing backoff)."""
        full = self.pool.get_stats()["pool_size"] >= self.pool.max_size
        return not full or self._troubled or waited >= FULL_POOL_WAIT_SECONDS

    def connection_of_its_own(self, role: str) -> Connection[DictRow]:
        """A connection outside the pool, for a session held for long (LISTEN),
        named for ``role`` (see :func:`application_name`); the caller closes it."""
        conn = self._connect_directly(self.connect_timeout_seconds, role=role)
        # Outside the pool, nothing would put it back in autocommit mode.
        conn.autocommit = True
        return conn

    def _connect_directly(
        self, seconds: float, *, role: str | None = None
    ) -> Connection[DictRow]:
        kwargs = self.pool.kwargs
        assert isinstance(kwargs, dict)
        params = dict(kwargs)
        if role is not None:
            params["application_name"] = application_name(role)
        if self.pool.get_password_func is not None:
            params["password"] = self.pool.get_password_func()
        params["connect_timeout"] = max(
            2, math.ceil(min(max(seconds, 0), self.connect_timeout_seconds))
        )
        conn: Connection[DictRow] = Connection.connect(**params)
        try:
            self.after_connect_func()(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def _password(self) -> str:
        params = self.pool.kwargs
        assert isinstance(params, dict)
        return str(params.get("password") or "")

    def _unreachable(
        self, reason: str, started: float, *, refused: bool
    ) -> DatabaseUnreachableError:
        return DatabaseUnreachableError(
            self.location,
            reason,
            seconds=time.monotonic() - started,
            refused=refused,
        )
