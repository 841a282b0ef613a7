"""A command's write that loses its connection, retried within the command's
time and never stored twice."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing import postgres as es_postgres
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    StoredEvent,
)
from psycopg.sql import SQL, Identifier

from application.persistence import DatabaseUnreachableError, WriteOutcomeUnknownError
from application.persistence.budget import backoff, remaining, undecorated

log = logging.getLogger(__name__)


class RecognisesOwnWrites(es_postgres.PostgresApplicationRecorder):
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
        once = undecorated(insert)
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
