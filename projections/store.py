"""The view store: read-model tables, their tracking positions, and the registry
of which generation of each projection is serving readers.

A batch of events and the position it brings a subscriber to are written in one
transaction, and only if the stored position is still the one the subscriber
started from; so a crash, a redelivery or a second instance of the same
subscriber can never apply an event twice or skip one.
"""

from __future__ import annotations

import os
import socket
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from projections.base import Projection, generation_tables
from projections.engine import WRITE_TRANSACTION

system_metadata = MetaData()

tracking_table = Table(
    "eventshop_tracking",
    system_metadata,
    Column("subscriber", String(200), primary_key=True),
    Column("service", String(100), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

generations_table = Table(
    "eventshop_generations",
    system_metadata,
    Column("projection", String(100), primary_key=True),
    Column("active", Integer, nullable=False),
    Column("switched_at", DateTime(timezone=True), nullable=False),
)

subscribers_table = Table(
    "eventshop_subscribers",
    system_metadata,
    Column("subscriber", String(200), primary_key=True),
    Column("host", String(200), primary_key=True),
    Column("pid", Integer, primary_key=True),
    Column("state", String(20), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("error", Text, nullable=True),
)

# Serializes schema changes across processes on PostgreSQL (same key as the
# event store's, so tables of both kinds are never created concurrently).
SCHEMA_LOCK_KEY = 0x6576_7368_6F70


@dataclass(frozen=True)
class SubscriberReport:
    state: str
    host: str
    pid: int
    heartbeat_at: datetime
    error: str | None


def _as_utc(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes for what was stored as UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def subscriber_name(projection: type[Projection], generation: int) -> str:
    """The tracking name of one generation of a projection."""
    return f"{projection.name}@g{generation}"


class ViewStore:
    """Read models and their positions in one SQLAlchemy database."""

    def __init__(self, engine: Engine, projections: Sequence[type[Projection]]):
        self.engine = engine
        self.writer = engine.execution_options(**WRITE_TRANSACTION)
        self.projections = {projection.name: projection for projection in projections}
        self.is_postgres = engine.dialect.name == "postgresql"

    # -- schema --------------------------------------------------------------

    @contextmanager
    def schema_change(self) -> Iterator[Connection]:
        """A transaction in which no other process changes the schema."""
        with self.writer.begin() as connection:
            if self.is_postgres:
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": SCHEMA_LOCK_KEY},
                )
            yield connection

    def create_schema(self) -> None:
        """Creates what is missing: system tables, a registry row and the active
        generation's tables for every projection. Idempotent; safe to run from
        many processes at once."""
        with self.schema_change() as connection:
            system_metadata.create_all(connection)
            for projection in self.projections.values():
                generation = self._active_generation(connection, projection.name)
                if generation is None:
                    generation = 1
                    connection.execute(
                        insert(generations_table).values(
                            projection=projection.name,
                            active=generation,
                            switched_at=datetime.now(UTC),
                        )
                    )
                self._create_tables(connection, projection, generation)

    def create_generation(self, projection: type[Projection], generation: int) -> None:
        """Creates (empty) the tables of one generation of a projection."""
        with self.schema_change() as connection:
            self._create_tables(connection, projection, generation)

    def drop_generation(self, projection: type[Projection], generation: int) -> None:
        """Drops the tables and the tracking of one (inactive) generation."""
        with self.schema_change() as connection:
            if self._active_generation(connection, projection.name) == generation:
                raise ValueError(
                    f"generation {generation} of {projection.name} is serving readers"
                )
            for table in generation_tables(projection, generation).values():
                table.drop(connection, checkfirst=True)
            connection.execute(
                tracking_table.delete().where(
                    tracking_table.c.subscriber
                    == subscriber_name(projection, generation)
                )
            )

    @staticmethod
    def _create_tables(
        connection: Connection, projection: type[Projection], generation: int
    ) -> None:
        for table in generation_tables(projection, generation).values():
            table.create(connection, checkfirst=True)

    # -- generations ---------------------------------------------------------

    def active_generation(self, projection: type[Projection]) -> int:
        with self.engine.connect() as connection:
            generation = self._active_generation(connection, projection.name)
        if generation is None:
            raise LookupError(f"projection {projection.name} has no tables yet")
        return generation

    def active_tables(self, projection: type[Projection]) -> Mapping[str, Table]:
        """The tables readers should query now."""
        return generation_tables(projection, self.active_generation(projection))

    @staticmethod
    def _active_generation(connection: Connection, name: str) -> int | None:
        return connection.execute(
            select(generations_table.c.active).where(
                generations_table.c.projection == name
            )
        ).scalar_one_or_none()

    def switch(
        self, projection: type[Projection], generation: int, connection: Connection
    ) -> None:
        """Makes ``generation`` the one readers see (inside the caller's
        transaction, so a comparison and the switch can be one atomic step)."""
        connection.execute(
            update(generations_table)
            .where(generations_table.c.projection == projection.name)
            .values(active=generation, switched_at=datetime.now(UTC))
        )

    # -- positions -----------------------------------------------------------

    def position(self, subscriber: str, service: str) -> int | None:
        """The last notification id the subscriber has handled, if any."""
        with self.engine.connect() as connection:
            return self._position(connection, subscriber, service, lock=False)

    def _position(
        self, connection: Connection, subscriber: str, service: str, *, lock: bool
    ) -> int | None:
        query = select(tracking_table.c.position).where(
            tracking_table.c.subscriber == subscriber,
            tracking_table.c.service == service,
        )
        if lock and self.is_postgres:
            query = query.with_for_update()
        return connection.execute(query).scalar_one_or_none()

    def apply(
        self,
        projection: type[Projection],
        generation: int,
        events: Sequence[object],
        *,
        expected_position: int | None,
        new_position: int,
        only_if_active: bool = False,
    ) -> bool:
        """Handles ``events`` into one generation's tables and moves its position
        from ``expected_position`` to ``new_position``, in one transaction.

        Returns False, having written nothing, if the stored position is not
        ``expected_position`` (another instance got there first), or, with
        ``only_if_active``, if readers were switched to another generation: the
        caller must re-read its generation and position and carry on from there.
        """
        subscriber = subscriber_name(projection, generation)
        try:
            with self.writer.begin() as connection:
                current = self._position(
                    connection, subscriber, projection.follows, lock=True
                )
                if current != expected_position:
                    return False
                if (
                    only_if_active
                    and self._active_generation(connection, projection.name)
                    != generation
                ):
                    return False
                handler = projection(generation_tables(projection, generation))
                for event in events:
                    handler.handle(connection, event)
                self._move(
                    connection, subscriber, projection.follows, current, new_position
                )
        except IntegrityError:
            if expected_position is None:
                # Two first batches raced to insert the tracking row.
                return False
            raise
        return True

    @staticmethod
    def _move(
        connection: Connection,
        subscriber: str,
        service: str,
        current: int | None,
        new_position: int,
    ) -> None:
        if current is None:
            connection.execute(
                insert(tracking_table).values(
                    subscriber=subscriber, service=service, position=new_position
                )
            )
        else:
            connection.execute(
                update(tracking_table)
                .where(
                    tracking_table.c.subscriber == subscriber,
                    tracking_table.c.service == service,
                )
                .values(position=new_position)
            )

    # -- what subscribers report about themselves ----------------------------

    def report(self, subscriber: str, state: str, error: str | None = None) -> None:
        """Records the state and heartbeat of this process's instance of a
        subscriber (for ``eventshop status``)."""
        instance = (
            (subscribers_table.c.subscriber == subscriber)
            & (subscribers_table.c.host == socket.gethostname())
            & (subscribers_table.c.pid == os.getpid())
        )
        values = {"state": state, "heartbeat_at": datetime.now(UTC), "error": error}
        with self.writer.begin() as connection:
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

    def reports(self) -> dict[str, list[SubscriberReport]]:
        """Every instance's last report, per subscriber, freshest first."""
        with self.engine.connect() as connection:
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
                    heartbeat_at=_as_utc(row.heartbeat_at),
                    error=row.error,
                )
            )
        return reports

    # -- comparing generations -------------------------------------------------

    def checksums(
        self, projection: type[Projection], generation: int, connection: Connection
    ) -> dict[str, tuple[int, int]]:
        """(row count, order-independent checksum) of each table of a generation."""
        result: dict[str, tuple[int, int]] = {}
        for name, table in generation_tables(projection, generation).items():
            count = 0
            digest = 0
            for row in connection.execute(select(table)):
                count += 1
                # Sum of per-row CRCs: equal for equal multisets of rows,
                # whatever order the database returns them in.
                digest = (digest + zlib.crc32(repr(tuple(row)).encode())) % 2**64
            result[name] = (count, digest)
        return result
