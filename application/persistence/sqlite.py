"""The embedded engine: eventsourcing's SQLite recorders, made append-only, with
schema creation serialized so any number of processes can start at once."""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing import sqlite as es_sqlite
from eventsourcing.persistence import (
    ApplicationRecorder,
    StoredEvent,
    Subscription,
    Tracking,
)

from application.persistence import (
    APPEND_ONLY_MESSAGE,
    EXPECTED_POSITION,
    PositionMovedError,
)
from application.persistence.subscriptions import (
    LocalWrites,
    PollingSubscription,
    Waker,
)


@contextmanager
def schema_lock(database: str) -> Iterator[None]:
    """Holds an exclusive ``flock`` on a file of the database's for the block's
    duration (under ``locks/`` beside it, with the subscribers' leadership
    locks), so that one process at a time creates its tables.

    The library's tracking table is created in two steps that another process
    can come between: it looks whether the table exists (outside any
    transaction), then creates it and records the migration marker; a second
    process that looked before the first created it then finds the marker
    recorded and fails ("Failed to record tracking for __migration__ 1").
    The kernel releases the lock when the process dies, however it dies."""
    file_name = Path(database)
    path = file_name.parent / "locks" / f"schema-{file_name.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as file:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)


class _SerializedSchema(es_sqlite.SQLiteRecorder):
    def create_table(self) -> None:
        pool = self.datastore.pool
        if pool.is_sqlite_memory_mode:
            # Nothing to share: an in-memory database is this process's own.
            super().create_table()
            return
        with schema_lock(pool.db_name):
            super().create_table()


class _AppendOnly(es_sqlite.SQLiteRecorder):
    events_table_name: str

    def construct_create_table_statements(self) -> list[str]:
        # A trigger on DELETE also turns off SQLite's truncate optimisation, so a
        # bare "DELETE FROM table" is refused too.
        table = self.events_table_name
        return [
            *super().construct_create_table_statements(),
            *(
                f"CREATE TRIGGER IF NOT EXISTS {table}_refuse_{operation} "
                f"BEFORE {operation.upper()} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
                for operation in ("update", "delete")
            ),
        ]


# Well under SQLite's limit of bound parameters per statement (999 before
# 3.32), two per originator when versions are bound too.
IDS_PER_STATEMENT = 400


def _chunks(items: Collection[UUID], size: int) -> Iterator[list[UUID]]:
    remaining = iter(items)
    while chunk := list(islice(remaining, size)):
        yield chunk


class _BulkReads(es_sqlite.SQLiteAggregateRecorder):
    """Reads the events of many originators in few statements (see
    ``application.services.loading``), instead of one per originator."""

    def select_events_after(self, versions: Mapping[UUID, int]) -> list[StoredEvent]:
        def statement(count: int) -> str:
            after = ", ".join(["(?, ?)"] * count)
            return (
                f"WITH after(id, version) AS (VALUES {after}) "
                "SELECT e.originator_id, e.originator_version, e.topic, e.state "
                f"FROM after JOIN {self.events_table_name} AS e "
                "ON e.originator_id = after.id "
                "AND e.originator_version > after.version "
                "ORDER BY e.originator_id, e.originator_version"
            )

        def params(ids: list[UUID]) -> list[object]:
            return [value for id_ in ids for value in (id_.hex, versions[id_])]

        return self._select_in_chunks(versions, statement, params)

    def select_latest_events(
        self, originator_ids: Collection[UUID]
    ) -> list[StoredEvent]:
        def statement(count: int) -> str:
            wanted = ", ".join(["?"] * count)
            return (
                "SELECT e.originator_id, e.originator_version, e.topic, e.state "
                "FROM (SELECT originator_id AS id, MAX(originator_version) AS version "
                f"FROM {self.events_table_name} WHERE originator_id IN ({wanted}) "
                "GROUP BY originator_id) AS latest "
                f"JOIN {self.events_table_name} AS e "
                "ON e.originator_id = latest.id "
                "AND e.originator_version = latest.version"
            )

        def params(ids: list[UUID]) -> list[object]:
            return [id_.hex for id_ in ids]

        return self._select_in_chunks(originator_ids, statement, params)

    def _select_in_chunks(
        self,
        originator_ids: Collection[UUID],
        statement: Callable[[int], str],
        params: Callable[[list[UUID]], list[object]],
    ) -> list[StoredEvent]:
        stored: list[StoredEvent] = []
        if not originator_ids:
            return stored
        # One read transaction, so every chunk sees the same state of the store.
        with self.datastore.transaction(commit=False) as c:
            for chunk in _chunks(originator_ids, IDS_PER_STATEMENT):
                c.execute(statement(len(chunk)), params(chunk))
                stored.extend(
                    StoredEvent(
                        originator_id=self.convert_originator_id(row["originator_id"]),
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=row["state"],
                    )
                    for row in c.fetchall()
                )
        return stored


class SQLiteAggregateRecorder(
    _SerializedSchema, _BulkReads, es_sqlite.SQLiteAggregateRecorder
):
    """Holds snapshots."""


class _Subscribable(es_sqlite.SQLiteApplicationRecorder):
    """Adds the subscription eventsourcing's SQLite module lacks, and signals
    of the writes made by this process (other processes' writes are found by
    polling the log every ``poll_interval`` seconds)."""

    poll_interval: float | None = PollingSubscription.poll_interval

    def wake_on_write(self, waker: Waker) -> None:
        LocalWrites.listen(self.datastore.pool.db_name, waker)
        waker.set()

    def stop_waking(self, waker: Waker) -> None:
        LocalWrites.unlisten(self.datastore.pool.db_name, waker)

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return PollingSubscription(
            self, database=self.datastore.pool.db_name, gt=gt, topics=topics
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        notification_ids = super().insert_events(stored_events, **kwargs)
        LocalWrites.written(self.datastore.pool.db_name)
        return notification_ids


class SQLiteApplicationRecorder(
    _SerializedSchema,
    _AppendOnly,
    _BulkReads,
    _Subscribable,
    es_sqlite.SQLiteApplicationRecorder,
):
    pass


class SQLiteProcessRecorder(
    _SerializedSchema,
    _AppendOnly,
    _BulkReads,
    _Subscribable,
    es_sqlite.SQLiteProcessRecorder,
):
    def ensure_tracking(self, leader: str) -> None:
        """Gives ``leader`` a tracking row (at 0), like the PostgreSQL recorder."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT INTO tracking VALUES (?, 0) "
                "ON CONFLICT (application_name) DO NOTHING",
                (leader,),
            )

    def _insert_events(
        self,
        c: es_sqlite.SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        tracking: Tracking | None = kwargs.get("tracking")
        expected: int | None = kwargs.get(EXPECTED_POSITION)
        if tracking is not None and expected is not None:
            # Writing first takes the database's write lock before the read, so
            # the position read cannot go stale before this transaction commits.
            c.execute(
                "UPDATE tracking SET notification_id = notification_id "
                "WHERE application_name = ?",
                (tracking.application_name,),
            )
            found = self._max_tracking_id(tracking.application_name, c)
            if found != expected:
                raise PositionMovedError(tracking.application_name, expected, found)
        return super()._insert_events(c, stored_events, **kwargs)


class SQLiteFactory(es_sqlite.SQLiteFactory):
    aggregate_recorder_class = SQLiteAggregateRecorder
    application_recorder_class = SQLiteApplicationRecorder
    process_recorder_class = SQLiteProcessRecorder
