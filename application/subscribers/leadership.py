"""Leadership: at most one active instance of a background worker (a
subscriber's runner, the payment-deadline ticker, a chain keeper) per store.

The active instance holds a lock named after the worker (an advisory lock on
PostgreSQL, a lock file on SQLite) while it is active, so that a second
instance waits as a standby and takes over when the first one dies (its
session or its file closes, and the lock with it). ``application.subscribers
.background`` is the loop that takes, checks and gives up the lead.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import IO, ClassVar, Protocol

import psycopg

from application.databases import PostgresLocation
from application.persistence.connections import application_name

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
"""How often a worker says it is alive, leading or standing by (and, leading,
checks that it still holds its lock)."""


class Leadership(Protocol):
    def acquire(self, stopping: threading.Event, waiting: Callable[[], None]) -> bool:
        """Blocks until this instance may run (True) or it is stopping (False),
        calling ``waiting`` now and then while it waits."""

    def is_held(self) -> bool: ...

    def release(self) -> None: ...


class Unshared:
    """For SQLite: every instance may run; the position check in each batch's
    transaction is what keeps two of them from applying an event twice."""

    def acquire(self, stopping: threading.Event, waiting: Callable[[], None]) -> bool:
        return not stopping.is_set()

    def is_held(self) -> bool:
        return True

    def release(self) -> None:
        pass


class _LockSession:
    """One PostgreSQL session per process and server that holds every advisory
    lock this process's subscribers take: one connection instead of one per
    subscriber. When the session dies the server drops all its locks, and every
    holder here learns it at its next check. It is closed when nobody here
    holds a lock or tries to take one any more (a shop closed)."""

    _sessions: ClassVar[dict[str, _LockSession]] = {}
    _sessions_lock = threading.Lock()

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._lock = threading.Lock()
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None
        self._held: set[int] = set()
        self._users = 0

    @classmethod
    def for_server(cls, conninfo: str) -> _LockSession:
        with cls._sessions_lock:
            if conninfo not in cls._sessions:
                cls._sessions[conninfo] = cls(conninfo)
            return cls._sessions[conninfo]

    def try_lock(self, key: int) -> bool:
        with self._lock:
            # Advisory locks are re-entrant within a session; a second holder
            # in this process must wait like one in another process.
            if key in self._held:
                return False
            connection = self._connect()
            row = connection.execute(
                "SELECT pg_try_advisory_lock(%s)", (key,)
            ).fetchone()
            if row is not None and row[0] is True:
                self._held.add(key)
                return True
            return False

    def holds(self, key: int) -> bool:
        with self._lock:
            if key not in self._held or self._connection is None:
                return False
            try:
                self._connection.execute("SELECT 1")
            except psycopg.Error:
                self._forget()
                return False
            return True

    def unlock(self, key: int) -> None:
        with self._lock:
            if key in self._held and self._connection is not None:
                self._held.discard(key)
                with contextlib.suppress(psycopg.Error):
                    self._connection.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def enter(self) -> None:
        """Someone here is about to try for a lock (and may then hold it)."""
        with self._lock:
            self._users += 1

    def leave(self) -> None:
        """Someone here neither tries for a lock nor holds one any more."""
        with self._lock:
            self._users -= 1
            if self._users <= 0 and not self._held:
                self._users = 0
                self._forget()

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._connection is None or self._connection.closed:
            self._forget()
            self._connection = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=5,
                application_name=application_name("locks"),
            )
        return self._connection

    def _forget(self) -> None:
        """The session is gone, and with it every lock it held."""
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
        self._connection = None
        self._held.clear()


class _TriedNowAndThen(ABC):
    """A leadership taken by trying a lock every ``retry_seconds`` until it is
    free: the standby instances are the ones still trying. They call
    ``waiting`` every ``heartbeat_seconds``."""

    retry_seconds = 0.5
    heartbeat_seconds = HEARTBEAT_SECONDS

    def acquire(self, stopping: threading.Event, waiting: Callable[[], None]) -> bool:
        last_waiting = 0.0
        while not stopping.is_set():
            try:
                if self._try_lock():
                    return True
            except OSError:
                # A lock file that cannot be opened just now. A database error
                # is the caller's to wait out (and to report).
                log.warning("could not try the lock; retrying", exc_info=True)
            if time.monotonic() - last_waiting > self.heartbeat_seconds:
                waiting()
                last_waiting = time.monotonic()
            stopping.wait(self.retry_seconds)
        return False

    @abstractmethod
    def _try_lock(self) -> bool:
        """Takes the lock if it is free (True), at once."""


class AdvisoryLockLeadership(_TriedNowAndThen):
    """At most one active instance per subscriber across every process on the
    PostgreSQL server: a session-level advisory lock, taken on this process's
    shared lock session."""

    def __init__(self, location: PostgresLocation, subscriber: str) -> None:
        self._session = _LockSession.for_server(location.conninfo())
        # Advisory locks are per database, so the schema is part of the name:
        # two shops in two schemas of one database must not block each other.
        scope = f"eventshop subscriber {location.dbname}.{location.schema}.{subscriber}"
        digest = hashlib.blake2b(scope.encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)

    def acquire(self, stopping: threading.Event, waiting: Callable[[], None]) -> bool:
        # The session stays open while this instance tries or holds the lock.
        self._session.enter()
        try:
            acquired = super().acquire(stopping, waiting)
        except BaseException:
            self._session.leave()
            raise
        if not acquired:
            self._session.leave()
        return acquired

    def _try_lock(self) -> bool:
        return self._session.try_lock(self.key)

    def is_held(self) -> bool:
        return self._session.holds(self.key)

    def release(self) -> None:
        self._session.unlock(self.key)
        self._session.leave()


class FileLockLeadership(_TriedNowAndThen):
    """For SQLite: at most one active instance per subscriber across every
    process using the data folder, as the advisory lock does on PostgreSQL:
    an exclusive ``flock`` on a file named after the subscriber. The kernel
    releases it when the process dies, however it dies; and since it belongs
    to an open file, not to a process, two shops in one process exclude each
    other too."""

    def __init__(self, data_dir: Path, subscriber: str) -> None:
        self.path = data_dir / "locks" / f"{subscriber}.lock"
        self._file: IO[bytes] | None = None

    def _try_lock(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("ab")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        except BaseException:
            file.close()
            raise
        self._file = file
        return True

    def is_held(self) -> bool:
        # Nothing but closing the file (or dying) gives up a flock.
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
