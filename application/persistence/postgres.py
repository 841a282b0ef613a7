"""The shared engine: eventsourcing's PostgreSQL recorders, made append-only, with
schema creation serialized so any number of processes can start at once."""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, ClassVar, Self, TypeVar
from uuid import UUID

import psycopg
from eventsourcing import postgres as es_postgres
from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StoredEvent,
    Subscription,
    Tracking,
)
from eventsourcing.utils import Environment, EnvType
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal

from application.config import (
    COMMAND_TIMEOUT_VARIABLE,
    CONNECT_TIMEOUT_VARIABLE,
    DEFAULT_COMMAND_TIMEOUT_SECONDS,
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_POOL_MAX_IDLE_SECONDS,
    DEFAULT_SHARED_POOL_MAX_OVERFLOW,
    POOL_MAX_IDLE_VARIABLE,
    SHARED_POOL_MAX_OVERFLOW_VARIABLE,
)
from application.persistence import (
    APPEND_ONLY_MESSAGE,
    EXPECTED_POSITION,
    DatabaseUnreachableError,
    PositionMovedError,
    WriteOutcomeUnknownError,
)
from application.persistence.budget import backoff, has_budget, remaining
from application.persistence.connections import (
    BudgetedDatastore,
    SharedDatastores,
    application_name,
    is_refusal,
    server_reason,
)
from application.persistence.subscriptions import BatchingSubscription, Waker

log = logging.getLogger(__name__)

T = TypeVar("T")

# Key of the advisory lock held while any eventshop process creates tables,
# types, functions or triggers. PostgreSQL DDL is not safe to run concurrently
# for the same objects ("tuple concurrently updated", duplicate pg_type rows).
SCHEMA_LOCK_KEY = 0x6576_7368_6F70  # "evshop"

REFUSE_CHANGE_FUNCTION = "eventshop_refuse_change"


def _trigger_name(table_name: str, purpose: str) -> str:
    """A trigger name that stays distinct after PostgreSQL cuts identifiers to
    63 bytes: with the table's whole name in it, a long one would cut both
    triggers to the same name, and the second would silently replace the
    first. A hash of the table name keeps it short and unique per table."""
    digest = hashlib.sha256(table_name.encode()).hexdigest()[:16]
    return f"eventshop_{purpose}_{digest}"


def append_only_trigger_name(table_name: str) -> str:
    return _trigger_name(table_name, "append_only")


def no_truncate_trigger_name(table_name: str) -> str:
    return _trigger_name(table_name, "no_truncate")


@contextmanager
def schema_lock(datastore: es_postgres.PostgresDatastore) -> Iterator[None]:
    """Holds the schema lock for the block's duration, on a connection of its
    own that is closed afterwards (a pooled one would stay open, idle, for as
    long as the pool keeps it)."""
    conninfo, kwargs = datastore.pool.conninfo, datastore.pool.kwargs
    assert isinstance(conninfo, str)
    assert isinstance(kwargs, dict)
    try:
        conn = psycopg.connect(
            conninfo,
            autocommit=True,
            **{**kwargs, "application_name": application_name("schema")},
        )
    except psycopg.OperationalError as error:
        raise _unreachable(datastore, error) from None
    with conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))


def _unreachable(
    datastore: es_postgres.PostgresDatastore, error: psycopg.OperationalError
) -> DatabaseUnreachableError:
    params = datastore.pool.kwargs
    assert isinstance(params, dict)
    location = (
        str(params["host"]),
        int(params["port"]),
        str(params["dbname"]),
        str(params["user"]),
    )
    reason = server_reason(error, str(params.get("password") or ""))
    return DatabaseUnreachableError(
        location, reason, seconds=0.0, refused=is_refusal(error)
    )


class _SerializedSchema(es_postgres.PostgresRecorder):
    def create_table(self) -> None:
        with schema_lock(self.datastore):
            super().create_table()


class _BulkReads(es_postgres.PostgresAggregateRecorder):
    """Reads the events of many originators in one statement each (see
    ``application.services.loading``), by arrays rather than one round trip
    per originator."""

    def __init__(self, datastore: es_postgres.PostgresDatastore, **kwargs: str) -> None:
        super().__init__(datastore, **kwargs)
        table = SQL("{schema}.{table}").format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
        )
        id_type = Identifier(self.datastore.originator_id_type)
        self._select_events_after = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state "
            "FROM unnest(%s::{id_type}[], %s::bigint[]) AS after(id, version) "
            "JOIN {table} AS e ON e.originator_id = after.id "
            "AND e.originator_version > after.version "
            "ORDER BY e.originator_id, e.originator_version"
        ).format(table=table, id_type=id_type)
        # One index probe per originator, newest first, instead of reading
        # every snapshot an originator ever had.
        self._select_latest = SQL(
            "SELECT latest.* FROM unnest(%s::{id_type}[]) AS wanted(id) "
            "CROSS JOIN LATERAL ("
            "SELECT originator_id, originator_version, topic, state FROM {table} "
            "WHERE originator_id = wanted.id "
            "ORDER BY originator_version DESC LIMIT 1) AS latest"
        ).format(table=table, id_type=id_type)

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        select: Callable[..., Sequence[StoredEvent]] = super().select_events
        if not has_budget():
            return select(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
        # Inside a command: retried only for what is left of its time, not
        # the library's ten attempts of a whole connect timeout each.
        once = _undecorated(select)
        return _within_budget(
            lambda: once(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
        )

    def select_events_after(self, versions: Mapping[UUID, int]) -> list[StoredEvent]:
        if not versions:
            return []
        return self._select(
            self._select_events_after, (list(versions), list(versions.values()))
        )

    def select_latest_events(
        self, originator_ids: Collection[UUID]
    ) -> list[StoredEvent]:
        if not originator_ids:
            return []
        return self._select(self._select_latest, (list(originator_ids),))

    def _select(
        self, statement: SQL | Composed, params: Sequence[Any]
    ) -> list[StoredEvent]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]


def _undecorated(method: Callable[..., T]) -> Callable[..., T]:
    """A bound method of the library's without its retry decorator."""
    wrapped = getattr(method, "__wrapped__", None)
    if wrapped is None:
        return method
    return functools.partial(wrapped, method.__self__)  # type: ignore[attr-defined]


def _within_budget(read: Callable[[], T]) -> T:
    """``read()``, retried while the database is away, for as long as the
    current budget lasts; a refusal is not retried."""
    failures = 0
    while True:
        try:
            return read()
        except (OperationalError, InterfaceError) as error:
            if isinstance(error, DatabaseUnreachableError) and error.refused:
                raise
            failures += 1
            left = remaining(0.0)
            if left <= 0:
                raise
            time.sleep(min(left, backoff(failures)))


class ListenHub:
    """One LISTEN connection per database and process, for every channel (each
    service's log has one) and every subscription to it: an embedded shop
    follows three logs with a dozen subscribers, and PostgreSQL allows 100
    connections by default across all processes. The connection is one of its
    own, outside the services' pool, which would otherwise always hold one
    connection more than its callers use; it is opened when the first
    listener joins and closed when the last one leaves.

    A lost connection is re-established (with backoff) for as long as anyone
    listens, and every listener is woken once LISTEN is in effect again, for
    what was written meanwhile."""

    _hubs: ClassVar[dict[tuple[str, int, str, str], ListenHub]] = {}
    _hubs_lock = threading.Lock()

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._listeners: dict[str, set[Waker]] = {}
        # Set once LISTEN is in effect for the channel (or it failed: then
        # whoever waits for it should look at the log itself).
        self._listening: dict[str, threading.Event] = {}
        self._thread: threading.Thread | None = None

    @classmethod
    def for_datastore(cls, datastore: BudgetedDatastore) -> ListenHub:
        """The hub of this process for the database ``datastore`` is on (which
        it connects with from now on: the one asked last is open)."""
        connect = partial(datastore.connection_of_its_own, "listen")
        with cls._hubs_lock:
            hub = cls._hubs.get(datastore.location)
            if hub is None:
                hub = cls._hubs[datastore.location] = cls(connect)
            else:
                hub._connect = connect
            return hub

    def join(self, channel: str, wake: Waker, timeout: float = 30.0) -> None:
        """Sets ``wake`` whenever ``channel`` is notified, from now on; and
        once at once, when LISTEN is in effect, for writes made before it was."""
        with self._lock:
            self._listeners.setdefault(channel, set()).add(wake)
            listening = self._listening.setdefault(channel, threading.Event())
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._listen, name="listen", daemon=True
                )
                self._thread.start()
        listening.wait(timeout)
        wake.set()

    def leave(self, channel: str, wake: Waker) -> None:
        with self._lock:
            listeners = self._listeners.get(channel)
            if listeners is not None:
                listeners.discard(wake)
                if not listeners:
                    del self._listeners[channel]

    @property
    def channels(self) -> set[str]:
        """The channels someone listens to now."""
        with self._lock:
            return set(self._listeners)

    def _listen(self) -> None:
        failures = 0
        while self._wanted() is not None:
            try:
                with self._connect() as conn:
                    self._serve(conn, woken_after_failure=failures > 0)
                    return
            except Exception as error:
                failures += 1
                log.warning("LISTEN: %r", error)
                with self._lock:
                    for listening in self._listening.values():
                        listening.set()
                self._wake(self.channels)
                # Bounded at a second: while it cannot listen, writes of other
                # processes go unnoticed.
                time.sleep(backoff(failures))

    def _serve(
        self, conn: psycopg.Connection[Any], *, woken_after_failure: bool
    ) -> None:
        """Listens on ``conn`` to the channels wanted, as they come and go,
        until nobody listens any more."""
        listened: set[str] = set()
        while (wanted := self._wanted(listened)) is not None:
            for channel in sorted(wanted - listened):
                conn.execute(SQL("LISTEN {0}").format(Identifier(channel)))
                listened.add(channel)
                with self._lock:
                    self._listening.setdefault(channel, threading.Event()).set()
            for channel in sorted(listened - wanted):
                conn.execute(SQL("UNLISTEN {0}").format(Identifier(channel)))
                listened.discard(channel)
            if woken_after_failure:
                woken_after_failure = False
                self._wake(listened)
            for notify in conn.notifies(timeout=0.1, stop_after=1):
                self._wake({notify.channel})

    def _wanted(self, listened: set[str] | None = None) -> set[str] | None:
        """The channels someone listens to, or None if nobody does (then the
        thread ends). The channels of ``listened`` nobody wants any more are
        forgotten: a listener joining one of them waits for LISTEN again."""
        with self._lock:
            for channel in (listened or set()) - set(self._listeners):
                self._listening.pop(channel, None)
            if not self._listeners:
                self._thread = None
                self._listening.clear()
                return None
            return set(self._listeners)

    def _wake(self, channels: Collection[str]) -> None:
        with self._lock:
            listeners = [
                wake
                for channel in channels
                for wake in self._listeners.get(channel, ())
            ]
        for wake in listeners:
            wake.set()


class PostgresSubscription(
    BatchingSubscription[es_postgres.PostgresApplicationRecorder],
    es_postgres.PostgresSubscription,
):
    """LISTEN/NOTIFY subscription that also hands out batches, listening through
    its process's shared hub rather than a connection of its own."""

    def _listen(self) -> None:
        self._hub.join(self._recorder.channel_name, self._has_been_notified)
        if self._has_been_stopped:
            # Stopped while joining: ``stop`` may have left before we joined.
            self._hub.leave(self._recorder.channel_name, self._has_been_notified)

    def stop(self) -> None:
        super().stop()
        self._hub.leave(self._recorder.channel_name, self._has_been_notified)

    @property
    def _hub(self) -> ListenHub:
        hub: ListenHub = self._recorder.listen_hub  # type: ignore[attr-defined]
        return hub


class _AppendOnly(_SerializedSchema, es_postgres.PostgresApplicationRecorder):
    def __init__(self, datastore: es_postgres.PostgresDatastore, **kwargs: str) -> None:
        super().__init__(datastore, **kwargs)
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        function = Identifier(REFUSE_CHANGE_FUNCTION)
        self.sql_create_statements += [
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}() "
                "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION '% on %.%: {message}', "
                "TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME "
                "USING ERRCODE = 'insufficient_privilege'; "
                "END $$"
            ).format(
                schema=schema,
                function=function,
                message=SQL(APPEND_ONLY_MESSAGE),
            ),
            SQL(
                "CREATE OR REPLACE TRIGGER {trigger} "
                "BEFORE UPDATE OR DELETE ON {schema}.{table} "
                "FOR EACH ROW EXECUTE FUNCTION {schema}.{function}()"
            ).format(
                trigger=Identifier(append_only_trigger_name(self.events_table_name)),
                schema=schema,
                table=table,
                function=function,
            ),
            SQL(
                "CREATE OR REPLACE TRIGGER {trigger} "
                "BEFORE TRUNCATE ON {schema}.{table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{function}()"
            ).format(
                trigger=Identifier(no_truncate_trigger_name(self.events_table_name)),
                schema=schema,
                table=table,
                function=function,
            ),
            SQL("COMMENT ON TABLE {schema}.{table} IS {comment}").format(
                schema=schema, table=table, comment=Literal(APPEND_ONLY_MESSAGE)
            ),
        ]


class _RecognisesOwnWrites(es_postgres.PostgresApplicationRecorder):
    """A command's write that loses its connection is retried, within the
    command's time, and never twice: the library retried it blindly, so a
    write stored just before the connection went (its reply lost) came back
    as a conflict with itself, and the command failed (``open_cart``) or ran
    again on its own result (``checkout``: "cart is checked out").

    After a lost connection, the stored events at the versions written are
    compared, byte for byte, with the ones sent: all there means it was
    stored (their positions are returned as if nothing had happened); none
    means it was not, and it is sent again; another writer's event at one of
    them is a plain conflict. The event bytes hold the event's time and its
    metadata, so another command's events never match."""

    def __init__(self, datastore: es_postgres.PostgresDatastore, **kwargs: str) -> None:
        super().__init__(datastore, **kwargs)
        table = SQL("{schema}.{table}").format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
        )
        self._select_written = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state, "
            "e.notification_id "
            "FROM unnest(%s::{id_type}[], %s::bigint[]) AS written(id, version) "
            "JOIN {table} AS e ON e.originator_id = written.id "
            "AND e.originator_version = written.version"
        ).format(table=table, id_type=Identifier(self.datastore.originator_id_type))

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        insert: Callable[..., Sequence[int] | None] = super().insert_events
        if not stored_events or kwargs.get("tracking") is not None:
            # A subscriber's batch: its runner retries it, and the tracked
            # position tells a stored batch from a lost one.
            return insert(stored_events, **kwargs)
        once = _undecorated(insert)
        default: float = getattr(self.datastore, "command_timeout_seconds", 30.0)
        ends = time.monotonic() + remaining(default)
        started = time.monotonic()
        maybe_stored = False
        failures = 0
        while True:
            try:
                if maybe_stored:
                    found = self.stored_already(stored_events)
                    if found is not None:
                        return found
                return once(stored_events, **kwargs)
            except (OperationalError, InterfaceError) as error:
                if not isinstance(error, DatabaseUnreachableError):
                    maybe_stored = True
                elif error.refused and not maybe_stored:
                    raise
                failures += 1
                left = ends - time.monotonic()
                if left <= 0:
                    if maybe_stored:
                        raise WriteOutcomeUnknownError(
                            stored_events, time.monotonic() - started, str(error)
                        ) from error
                    raise
                log.warning("write lost its connection, retrying: %s", error)
                time.sleep(min(left, backoff(failures)))

    def stored_already(self, stored_events: Sequence[StoredEvent]) -> list[int] | None:
        """The positions of ``stored_events`` if exactly they are stored;
        None if none of them is; raises ``IntegrityError`` if another
        writer's events hold their versions."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                self._select_written,
                (
                    [event.originator_id for event in stored_events],
                    [event.originator_version for event in stored_events],
                ),
            )
            rows = {
                (row["originator_id"], row["originator_version"]): row
                for row in curs.fetchall()
            }
        if not rows:
            return None
        positions = []
        for event in stored_events:
            row = rows.get((event.originator_id, event.originator_version))
            if (
                row is None
                or row["topic"] != event.topic
                or bytes(row["state"]) != event.state
            ):
                raise IntegrityError(
                    f"{event.originator_id} version {event.originator_version} "
                    "was written by another command"
                )
            positions.append(row["notification_id"])
        return positions


class PostgresAggregateRecorder(
    _SerializedSchema, _BulkReads, es_postgres.PostgresAggregateRecorder
):
    """Holds snapshots: derived data, so not append-only, but created safely."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        insert: Callable[..., Sequence[int] | None] = super().insert_events
        if has_budget():
            # A snapshot taken by a command whose events are stored: one try,
            # so that a database gone away does not keep it past its time
            # (the service carries on without it; the next one will do).
            return _undecorated(insert)(stored_events, **kwargs)
        return insert(stored_events, **kwargs)


class _Subscribable(es_postgres.PostgresApplicationRecorder):
    # LISTEN/NOTIFY signals every write, whichever process makes it.
    poll_interval: float | None = None

    @property
    def listen_hub(self) -> ListenHub:
        assert isinstance(self.datastore, BudgetedDatastore)
        return ListenHub.for_datastore(self.datastore)

    def wake_on_write(self, waker: Waker) -> None:
        self.listen_hub.join(self.channel_name, waker)

    def stop_waking(self, waker: Waker) -> None:
        self.listen_hub.leave(self.channel_name, waker)

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return PostgresSubscription(recorder=self, gt=gt, topics=topics)


class PostgresApplicationRecorder(
    _AppendOnly,
    _RecognisesOwnWrites,
    _BulkReads,
    _Subscribable,
    es_postgres.PostgresApplicationRecorder,
):
    pass


class PostgresProcessRecorder(
    _AppendOnly,
    _RecognisesOwnWrites,
    _BulkReads,
    _Subscribable,
    es_postgres.PostgresProcessRecorder,
):
    def ensure_tracking(self, leader: str) -> None:
        """Gives ``leader`` a tracking row (at 0) so a batch can always lock it."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {schema}.{table} VALUES (%s, 0) "
                    "ON CONFLICT (application_name) DO NOTHING"
                ).format(
                    schema=Identifier(self.datastore.schema),
                    table=Identifier(self.tracking_table_name),
                ),
                (leader,),
            )

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        tracking: Tracking | None = kwargs.get("tracking")
        expected: int | None = kwargs.get(EXPECTED_POSITION)
        if tracking is not None and expected is not None:
            # Locks the row, so a second instance of the subscriber waits here
            # and then finds the position moved, instead of applying twice.
            curs.execute(
                SQL(
                    "SELECT notification_id FROM {schema}.{table} "
                    "WHERE application_name = %s FOR UPDATE"
                ).format(
                    schema=Identifier(self.datastore.schema),
                    table=Identifier(self.tracking_table_name),
                ),
                (tracking.application_name,),
            )
            row = curs.fetchone()
            found = None if row is None else row["notification_id"]
            if found != expected:
                raise PositionMovedError(tracking.application_name, expected, found)
        super()._insert_events(curs, stored_events, **kwargs)


class PostgresFactory(es_postgres.PostgresFactory):
    """The library's factory, on a datastore this process's services share
    (see :class:`SharedDatastores`)."""

    aggregate_recorder_class = PostgresAggregateRecorder
    application_recorder_class = PostgresApplicationRecorder
    process_recorder_class = PostgresProcessRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self._released = False
        self.datastore = SharedDatastores.take(
            self.datastore,
            connect_timeout_seconds=float(
                self.env.get(CONNECT_TIMEOUT_VARIABLE)
                or DEFAULT_CONNECT_TIMEOUT_SECONDS
            ),
            command_timeout_seconds=float(
                self.env.get(COMMAND_TIMEOUT_VARIABLE)
                or DEFAULT_COMMAND_TIMEOUT_SECONDS
            ),
            max_idle_seconds=float(
                self.env.get(POOL_MAX_IDLE_VARIABLE) or DEFAULT_POOL_MAX_IDLE_SECONDS
            ),
            max_overflow=int(
                self.env.get(SHARED_POOL_MAX_OVERFLOW_VARIABLE)
                or DEFAULT_SHARED_POOL_MAX_OVERFLOW
            ),
        )

    def close(self) -> None:
        # An application closes its factory when it closes and again when it
        # is collected: the datastore is released once.
        if not self._released:
            self._released = True
            assert isinstance(self.datastore, BudgetedDatastore)
            SharedDatastores.release(self.datastore)

    def __enter__(self) -> Self:
        # The library's would open the shared pool and close it on exit.
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
