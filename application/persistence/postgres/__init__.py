"""The shared engine: eventsourcing's PostgreSQL recorders, made append-only, with
schema creation serialized so any number of processes can start at once.

Each of the recorders' jobs has a module of its own, composed here into the
three recorders and the factory the settings name
(``application.persistence.postgres:PostgresFactory``): ``schema`` (the
append-only tables, created under a lock), ``reads`` (bulk reads, reads within
a command's time), ``writes`` (a command's write that lost its connection),
``listen`` (one LISTEN connection per process for every subscription). The
connections themselves are ``application.persistence.connections``' (within
a command's time) and ``shared_datastores``' (one pool per process).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Self

from eventsourcing import postgres as es_postgres
from eventsourcing.persistence import StoredEvent, Tracking
from eventsourcing.utils import Environment, EnvType
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

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
from application.persistence import EXPECTED_POSITION, PositionMovedError
from application.persistence.budget import has_budget, undecorated
from application.persistence.connections import BudgetedDatastore
from application.persistence.postgres.listen import Subscribable
from application.persistence.postgres.reads import BulkReads
from application.persistence.postgres.schema import AppendOnly, SerializedSchema
from application.persistence.postgres.writes import RecognisesOwnWrites
from application.persistence.shared_datastores import SharedDatastores


class PostgresAggregateRecorder(
    SerializedSchema, BulkReads, es_postgres.PostgresAggregateRecorder
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
            return undecorated(insert)(stored_events, **kwargs)
        return insert(stored_events, **kwargs)


class PostgresApplicationRecorder(
    AppendOnly,
    RecognisesOwnWrites,
    BulkReads,
    Subscribable,
    es_postgres.PostgresApplicationRecorder,
):
    pass


class PostgresProcessRecorder(
    AppendOnly,
    RecognisesOwnWrites,
    BulkReads,
    Subscribable,
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
