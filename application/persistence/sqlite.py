"""The embedded engine: eventsourcing's SQLite recorders, made append-only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    _AppendOnly, _Subscribable, es_sqlite.SQLiteApplicationRecorder
):
    pass


class SQLiteProcessRecorder(
    _AppendOnly, _Subscribable, es_sqlite.SQLiteProcessRecorder
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
    application_recorder_class = SQLiteApplicationRecorder
    process_recorder_class = SQLiteProcessRecorder
