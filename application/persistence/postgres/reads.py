"""Reads of many originators' events in one statement each, and single reads
retried within a command's time rather than by the library's decorator."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing import postgres as es_postgres
from eventsourcing.persistence import StoredEvent
from psycopg.sql import SQL, Composed, Identifier

from application.persistence.budget import has_budget, undecorated, within_budget


class BulkReads(es_postgres.PostgresAggregateRecorder):
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
        once = undecorated(select)
        return within_budget(
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
