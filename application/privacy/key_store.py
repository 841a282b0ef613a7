"""The customers' keys: one AES key per customer, in ``eventshop_customer_keys``
of the views' database, and a cache of them in each process.

A forgotten customer keeps a row whose key is NULL (a tombstone), so that
"never seen" (a key may be made) and "forgotten" (never again) differ.

Caching: a key, once read, is kept; a tombstone is kept for good (a forget is
never undone). What must not last is a key that another process has since
deleted, so at most every ``recheck_seconds`` (1 s) a lookup first counts the
tombstones (one indexed query) and, if the count moved, reads which customers
they are and drops their keys. Time rather than each subscriber batch: the
transcoder that decrypts has no notion of batches, and a second bounds how long
a process may still decrypt after a forget however its batches run. This
process's own forget drops its cache entry at once.

Connections follow the services' rules: trouble with the database is raised as
the library's ``OperationalError`` (``DatabaseUnreachableError`` when no
connection could be had), waited out within a command's time budget, and the
pooled connection is closed once idle (``pool_max_idle_seconds``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from eventsourcing.persistence import OperationalError as StoreOperationalError
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from application.persistence import DatabaseUnreachableError
from application.persistence.budget import within_budget
from application.persistence.connections import server_reason
from domain.errors import CustomerForgottenError
from projections.batching.rows import storable
from projections.store.engine import WRITE_TRANSACTION
from projections.store.schema import SCHEMA_LOCK_KEY

KEY_BYTES = 32
"""AES-256."""

metadata = MetaData()
customer_keys = Table(
    "eventshop_customer_keys",
    metadata,
    Column("customer_id", String(200), primary_key=True),
    # NULL once the customer is forgotten.
    Column("key", LargeBinary, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("forgotten_at", DateTime(timezone=True), nullable=True),
    Index("eventshop_customer_keys_forgotten", "forgotten_at"),
)


class CustomerKeyStore:
    """Makes, finds and deletes customers' keys. Thread-safe; never shows a
    key in its repr or in an error."""

    def __init__(
        self,
        engine: Engine,
        *,
        recheck_seconds: float = 1.0,
        max_idle_seconds: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # A failed statement's message would otherwise show its parameters,
        # a new key among them.
        engine.hide_parameters = True
        self.engine = engine
        self._writer = engine.execution_options(**WRITE_TRANSACTION)
        self._recheck_seconds = recheck_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}
        self._forgotten: set[str] = set()
        self._tombstones_seen = -1
        self._checked_at = float("-inf")
        self._idle = _IdleConnections(engine, max_idle_seconds)

    def __repr__(self) -> str:
        return f"CustomerKeyStore({self.engine.url.render_as_string()})"

    def create_table(self) -> None:
        """Creates the table if missing (on PostgreSQL under the schema lock,
        with the schema the connections' search path names)."""
        with self._transaction() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": SCHEMA_LOCK_KEY},
                )
                schema = connection.execute(text("SELECT current_schema()")).scalar()
                if schema is None:
                    # The search path names a schema that is not there yet
                    # (the views' own, made by whoever opens them first).
                    path = connection.execute(text("SHOW search_path")).scalar_one()
                    name = str(path).split(",")[0].strip().strip('"')
                    quoted = connection.dialect.identifier_preparer.quote(name)
                    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
            metadata.create_all(connection)

    # -- lookups ---------------------------------------------------------------

    def key_of(self, customer_id: str) -> bytes | None:
        """The customer's key; None if they were forgotten. Raises
        ``LookupError`` if they have none yet."""
        customer_id = _as_stored(customer_id)
        within_budget(self._recheck_forgotten)
        with self._lock:
            if customer_id in self._forgotten:
                return None
            key = self._keys.get(customer_id)
        if key is not None:
            return key
        found, key = within_budget(lambda: self._read(customer_id))
        if not found:
            raise LookupError(f"customer {customer_id!r} has no key")
        return key

    def is_forgotten(self, customer_id: str) -> bool:
        try:
            return self.key_of(customer_id) is None
        except LookupError:
            return False

    def ensure_key(self, customer_id: str) -> bytes:
        """The customer's key, made now if they have none; raises
        ``CustomerForgottenError`` if they were forgotten."""
        customer_id = _as_stored(customer_id)
        try:
            key = self.key_of(customer_id)
        except LookupError:
            key = within_budget(lambda: self._create(customer_id))
        if key is None:
            raise CustomerForgottenError(customer_id)
        return key

    # -- forgetting --------------------------------------------------------------

    def forget(self, customer_id: str) -> None:
        """Deletes the customer's key for good, leaving a tombstone; forgetting
        again (or a customer never seen) is harmless."""
        customer_id = _as_stored(customer_id)
        # Within a command's time, the database's absence is waited out (as
        # the services' stores do); every step may run again.
        within_budget(lambda: self._tombstone_racing(customer_id))
        with self._lock:
            self._keys.pop(customer_id, None)
            self._forgotten.add(customer_id)

    def _tombstone_racing(self, customer_id: str) -> None:
        try:
            self._tombstone(customer_id)
        except IntegrityError:
            # Another forget, or a checkout making the key, inserted the row
            # between our look and our insert: now there is a row to update.
            self._tombstone(customer_id)

    def _tombstone(self, customer_id: str) -> None:
        now = datetime.now(UTC)
        with self._transaction() as connection:
            forgotten = connection.execute(
                update(customer_keys)
                .where(customer_keys.c.customer_id == customer_id)
                .where(customer_keys.c.forgotten_at.is_(None))
                .values(key=None, forgotten_at=now)
            ).rowcount
            if not forgotten:
                stored = connection.execute(
                    select(customer_keys.c.customer_id).where(
                        customer_keys.c.customer_id == customer_id
                    )
                ).first()
                if stored is None:
                    connection.execute(
                        insert(customer_keys).values(
                            customer_id=customer_id,
                            key=None,
                            created_at=now,
                            forgotten_at=now,
                        )
                    )

    # -- the table ---------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        self._idle.used()
        with _database_errors(self.engine), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        self._idle.used()
        with _database_errors(self.engine), self._writer.begin() as connection:
            yield connection

    def _read(self, customer_id: str) -> tuple[bool, bytes | None]:
        """Whether the customer has a row, and their key (None: forgotten)."""
        with self._connection() as connection:
            row = connection.execute(
                select(customer_keys.c.key).where(
                    customer_keys.c.customer_id == customer_id
                )
            ).first()
        if row is None:
            return False, None
        return True, self._remember(customer_id, row.key)

    def _create(self, customer_id: str) -> bytes | None:
        key = os.urandom(KEY_BYTES)
        try:
            with self._transaction() as connection:
                connection.execute(
                    insert(customer_keys).values(
                        customer_id=customer_id,
                        key=key,
                        created_at=datetime.now(UTC),
                        forgotten_at=None,
                    )
                )
        except IntegrityError:
            # Another writer made it (or forgot the customer) first: theirs holds.
            found, stored = self._read(customer_id)
            if not found:
                raise
            return stored
        return self._remember(customer_id, key)

    def _remember(self, customer_id: str, key: bytes | None) -> bytes | None:
        with self._lock:
            if key is None:
                self._keys.pop(customer_id, None)
                self._forgotten.add(customer_id)
            elif customer_id not in self._forgotten:
                self._keys[customer_id] = bytes(key)
            return self._keys.get(customer_id)

    def _recheck_forgotten(self) -> None:
        """Drops the keys other processes have deleted, at most every
        ``recheck_seconds``: one count, and the tombstones only if it moved."""
        now = self._monotonic()
        with self._lock:
            if now - self._checked_at < self._recheck_seconds:
                return
            self._checked_at = now
        with self._connection() as connection:
            count = connection.execute(
                select(func.count(customer_keys.c.forgotten_at))
            ).scalar_one()
            if count == self._tombstones_seen:
                return
            forgotten = connection.execute(
                select(customer_keys.c.customer_id).where(
                    customer_keys.c.forgotten_at.is_not(None)
                )
            ).scalars()
            ids = set(forgotten)
        with self._lock:
            self._tombstones_seen = count
            self._forgotten |= ids
            for customer_id in ids:
                self._keys.pop(customer_id, None)


def _as_stored(customer_id: str) -> str:
    """The id as the table holds it: a customer id stored before NUL was
    refused has U+FFFD for it, as in the views (PostgreSQL text holds no NUL)."""
    stored: str = storable(customer_id)
    return stored


class _IdleConnections:
    """Closes the store's pooled connection once unused for ``max_idle``
    seconds, as the services' pools do, so an idle process holds none for
    keys (a use after that connects again). Never, if ``max_idle`` is None."""

    def __init__(self, engine: Engine, max_idle: float | None) -> None:
        self._engine = engine
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._last_used = 0.0
        self._timer: threading.Timer | None = None

    def used(self) -> None:
        if self._max_idle is None:
            return
        with self._lock:
            self._last_used = time.monotonic()
            if self._timer is None:
                self._start(self._max_idle)

    def _start(self, seconds: float) -> None:
        self._timer = threading.Timer(seconds, self._close_if_idle)
        self._timer.daemon = True
        self._timer.start()

    def _close_if_idle(self) -> None:
        assert self._max_idle is not None
        with self._lock:
            idle_for = time.monotonic() - self._last_used
            if idle_for < self._max_idle:
                self._start(self._max_idle - idle_for)
                return
            self._timer = None
        # Closes the connections checked in; one in use is dropped when returned.
        self._engine.dispose()


@contextmanager
def _database_errors(engine: Engine) -> Iterator[None]:
    """The database's trouble as the services' stores tell it (the library's
    ``OperationalError``, or ``DatabaseUnreachableError`` when no connection
    could be had), so that a command reports it as ``StorageUnavailableError``
    and a runner waits it out; never with the statement's parameters."""
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        reason = server_reason(error.orig or error)
        url = engine.url
        # psycopg's words for a connection it could not make at all.
        lost = error.connection_invalidated or "connection failed" in str(error.orig)
        if lost and engine.dialect.name == "postgresql":
            raise DatabaseUnreachableError(
                (
                    url.host or "",
                    url.port or 5432,
                    url.database or "",
                    url.username or "",
                ),
                reason,
                seconds=0.0,
                refused="FATAL" in str(error.orig),
            ) from error.orig
        raise StoreOperationalError(reason) from error.orig
