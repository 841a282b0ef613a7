"""What each instance of a subscriber last said about itself: its state, its
error if any, and when (a heartbeat), for ``eventshop status``."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update

from projections.store.engine import as_utc
from projections.store.schema import StoreDatabase
from projections.store.tables import subscribers_table


@dataclass(frozen=True)
class SubscriberReport:
    state: str
    host: str
    pid: int
    heartbeat_at: datetime
    error: str | None


class SubscriberReports:
    """One row per instance (subscriber, host, process) and its last report."""

    def __init__(self, database: StoreDatabase) -> None:
        self.database = database

    def record(self, subscriber: str, state: str, error: str | None = None) -> None:
        """Records the state and heartbeat of this process's instance of a
        subscriber."""
        instance = (
            (subscribers_table.c.subscriber == subscriber)
            & (subscribers_table.c.host == socket.gethostname())
            & (subscribers_table.c.pid == os.getpid())
        )
        values = {"state": state, "heartbeat_at": datetime.now(UTC), "error": error}
        with self.database.writer.begin() as connection:
            updated = connection.execute(
                update(subscribers_table).where(instance).values(**values)
            )
            if updated.rowcount == 0:
                connection.execute(
                    insert(subscribers_table).values(
                        subscriber=subscriber,
                        host=socket.gethostname(),
                        pid=os.getpid(),
                        **values,
                    )
                )

    def all(self) -> dict[str, list[SubscriberReport]]:
        """Every instance's last report, per subscriber, freshest first."""
        with self.database.engine.connect() as connection:
            rows = connection.execute(
                select(subscribers_table).order_by(
                    subscribers_table.c.heartbeat_at.desc()
                )
            ).all()
        reports: dict[str, list[SubscriberReport]] = {}
        for row in rows:
            reports.setdefault(row.subscriber, []).append(
                SubscriberReport(
                    state=row.state,
                    host=row.host,
                    pid=row.pid,
                    heartbeat_at=as_utc(row.heartbeat_at),
                    error=row.error,
                )
            )
        return reports
