"""The view store: read-model tables, their tracking positions, and the registry
of which generation of each projection is serving readers.

A batch of events and the position it brings a subscriber to are written in one
transaction, and only if the stored position is still the one the subscriber
started from; so a crash, a redelivery or a second instance of the same
subscriber can never apply an event twice or skip one.

An event a read model gives up on is parked as a row of the dead-letter table,
written in the transaction that moves its position past the event; a retry
handles it and marks the row retried in one transaction, under the row's lock.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    RowMapping,
    String,
    Table,
    Text,
    Uuid,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateTable

from domain.dead_letter import (
    DeadLetterStatus,
    DeadLetterView,
    Failure,
    ParkedEvent,
    dead_letter_id,
)
from domain.errors import (
    DeadLetterNotFoundError,
    DeadLetterRetryFailedError,
    DeadLetterStateError,
)
from projections.base import Projection, deferrable_indexes, generation_tables
from projections.engine import WRITE_TRANSACTION, as_utc
from projections.flush import write_batch

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
    # The Projection.version of the code that built the active generation:
    # only runners of that version may write to it.
    Column("active_version", Integer, nullable=False, server_default="1"),
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

dead_letters_table = Table(
    "eventshop_dead_letters",
    system_metadata,
    Column("dead_letter_id", Uuid, primary_key=True),
    Column("projection", String(100), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("service", String(100), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("event_topic", Text, nullable=False),
    Column("originator_id", Uuid, nullable=False),
    Column("originator_version", BigInteger, nullable=False),
    Column("error", Text, nullable=False),
    Column("traceback", Text, nullable=False),
    Column("parked_at", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("discard_reason", Text, nullable=True),
)

# Rows fetched at a time while a table's checksum is computed.
CHECKSUM_CHUNK_ROWS = 2_000

# SQLite page cache of a transaction that writes a shadow generation (64 MiB),
# and SQLite's default (2 MiB), which the engine keeps.
BULK_PAGE_CACHE = "PRAGMA cache_size = -65536"
DEFAULT_PAGE_CACHE = "PRAGMA cache_size = -2000"

# Serializes schema changes across processes on PostgreSQL (same key as the
# event store's, so tables of both kinds are never created concurrently).
SCHEMA_LOCK_KEY = 0x6576_7368_6F70


@dataclass(frozen=True)
class ActiveGeneration:
    """What the registry says serves readers of one projection."""

    generation: int
    version: int


@dataclass(frozen=True)
class ActiveView:
    """The active generation's tables, and a read transaction in which they
    cannot be dropped (see :meth:`ViewStore.reading`)."""

    connection: Connection
    generation: int
    version: int
    tables: Mapping[str, Table]

    def table(self, name: str) -> Table:
        return self.tables[name]


@dataclass(frozen=True)
class SubscriberReport:
    state: str
    host: str
    pid: int
    heartbeat_at: datetime
    error: str | None


def _events_writer(
    projection: type[Projection], generation: int, events: Sequence[object]
) -> Callable[[Connection], None]:
    """Writes ``events`` into one generation's tables."""
    tables = generation_tables(projection, generation)

    def write(connection: Connection) -> None:
        write_batch(connection, projection, tables, events)

    return write


def _dead_letter_view(row: RowMapping) -> DeadLetterView:
    resolved_at: datetime | None = row["resolved_at"]
    return DeadLetterView(
        dead_letter_id=row["dead_letter_id"],
        subscriber=row["projection"],
        service=row["service"],
        position=row["position"],
        event_topic=row["event_topic"],
        originator_id=row["originator_id"],
        originator_version=row["originator_version"],
        error=row["error"],
        traceback=row["traceback"],
        parked_at=as_utc(row["parked_at"]),
        status=DeadLetterStatus(row["status"]),
        resolved_at=None if resolved_at is None else as_utc(resolved_at),
        discard_reason=row["discard_reason"],
    )


def subscriber_name(projection: type[Projection], generation: int) -> str:
    """The tracking name of one generation of a projection."""
    return f"{projection.name}@g{generation}"


_GENERATION_SUFFIX = re.compile(r"_g(\d+)$")

RegistryLock = Literal["share", "update"]


class ViewStore:
    """Read models and their positions in one SQLAlchemy database."""

    def __init__(self, engine: Engine, projections: Sequence[type[Projection]]):
        self.engine = engine
        self.writer = engine.execution_options(**WRITE_TRANSACTION)
        self.projections = {projection.name: projection for projection in projections}
        self.is_postgres = engine.dialect.name == "postgresql"
        self._schema: str | None = None

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
            self._add_missing_registry_columns(connection)
            for projection in self.projections.values():
                if self._active_generation(connection, projection.name) is not None:
                    # Its active generation may be another version's: a
                    # rebuild, not start-up, creates the tables of a new one.
                    continue
                connection.execute(
                    insert(generations_table).values(
                        projection=projection.name,
                        active=1,
                        active_version=projection.version,
                        switched_at=datetime.now(UTC),
                    )
                )
                self._create_tables(connection, projection, 1)

    @staticmethod
    def _add_missing_registry_columns(connection: Connection) -> None:
        """Upgrades a registry created before projections had versions."""
        columns = {
            column["name"]
            for column in inspect(connection).get_columns(generations_table.name)
        }
        if "active_version" not in columns:
            connection.execute(
                text(
                    "ALTER TABLE eventshop_generations"
                    " ADD COLUMN active_version INTEGER NOT NULL DEFAULT 1"
                )
            )

    def create_generation(self, projection: type[Projection], generation: int) -> None:
        """Creates (empty) the tables of one generation of a projection."""
        with self.schema_change() as connection:
            self._create_tables(connection, projection, generation)

    def reserve_generation(
        self, projection: type[Projection], *, defer_indexes: bool = False
    ) -> int:
        """Picks a generation number no one has used for this projection, creates
        its (empty) tables and its tracking row at position 0, in one schema
        change: two rebuilds started at once get different numbers.

        With ``defer_indexes``, on PostgreSQL, the indexes that neither keep
        rows unique nor serve the projection's ``loads`` are left for
        :meth:`create_indexes`: building an index over a filled table costs a
        fraction of keeping it up to date row by row. (SQLite would hold the
        whole database's write lock while building one.)"""
        with self.schema_change() as connection:
            generation = 1 + max(
                self._used_generations(connection, projection), default=0
            )
            deferred = (
                deferrable_indexes(projection, generation)
                if defer_indexes and self.is_postgres
                else ()
            )
            self._create_tables(connection, projection, generation, deferred)
            connection.execute(
                insert(tracking_table).values(
                    subscriber=subscriber_name(projection, generation),
                    service=projection.follows,
                    position=0,
                )
            )
        return generation

    def _used_generations(
        self, connection: Connection, projection: type[Projection]
    ) -> set[int]:
        """Numbers named by the registry, by tracking rows, or by tables that
        look like one of the projection's (left over by a crashed rebuild)."""
        used: set[int] = set()
        active = self._active_generation(connection, projection.name)
        if active is not None:
            used.add(active)
        prefix = f"{projection.name}@g"
        for subscriber in connection.execute(
            select(tracking_table.c.subscriber).where(
                tracking_table.c.subscriber.startswith(prefix, autoescape=True)
            )
        ).scalars():
            suffix = subscriber.removeprefix(prefix)
            if suffix.isdigit():
                used.add(int(suffix))
        templates = set(projection.metadata.tables)
        for table_name in inspect(connection).get_table_names():
            match = _GENERATION_SUFFIX.search(table_name)
            if match and table_name[: match.start()] in templates:
                used.add(int(match.group(1)))
        return used

    def drop_generation(self, projection: type[Projection], generation: int) -> None:
        """Drops the tables and the tracking of one (inactive) generation."""
        with self.schema_change() as connection:
            if self.is_postgres:
                # Waits for readers that may have resolved this generation
                # before it was switched away (see ``reading``).
                connection.execute(
                    select(
                        func.pg_advisory_xact_lock(
                            self._readers_lock_key(connection, projection)
                        )
                    )
                )
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

    def create_indexes(self, projection: type[Projection], generation: int) -> None:
        """Creates the indexes of a generation's tables that are missing (see
        :meth:`reserve_generation`)."""
        with self.schema_change() as connection:
            for table in generation_tables(projection, generation).values():
                for index in table.indexes:
                    index.create(connection, checkfirst=True)

    @staticmethod
    def _create_tables(
        connection: Connection,
        projection: type[Projection],
        generation: int,
        deferred: Collection[Index] = (),
    ) -> None:
        for table in generation_tables(projection, generation).values():
            if not deferred:
                table.create(connection, checkfirst=True)
                continue
            connection.execute(CreateTable(table, if_not_exists=True))
            for index in table.indexes:
                if index not in deferred:
                    index.create(connection, checkfirst=True)

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

    def active(self, projection: type[Projection]) -> ActiveGeneration:
        """The active generation of a projection and the version that built it."""
        with self.engine.connect() as connection:
            active = self.registry(connection, projection)
        if active is None:
            raise LookupError(f"projection {projection.name} has no tables yet")
        return active

    def registry(
        self,
        connection: Connection,
        projection: type[Projection],
        *,
        lock: RegistryLock | None = None,
    ) -> ActiveGeneration | None:
        """The registry row of a projection, read in the caller's transaction.

        On PostgreSQL, ``lock="share"`` (taken by live batches) and
        ``lock="update"`` (taken to switch) make a switch wait for the batches
        in flight, and the batches that follow see the switch."""
        query = select(
            generations_table.c.active, generations_table.c.active_version
        ).where(generations_table.c.projection == projection.name)
        if lock is not None and self.is_postgres:
            query = query.with_for_update(read=lock == "share")
        row = connection.execute(query).one_or_none()
        if row is None:
            return None
        return ActiveGeneration(generation=row.active, version=row.active_version)

    def switch(
        self,
        projection: type[Projection],
        generation: int,
        connection: Connection,
        *,
        version: int | None = None,
    ) -> None:
        """Makes ``generation`` the one readers see (inside the caller's
        transaction, so a comparison and the switch can be one atomic step),
        recording that code of ``version`` (default: the projection's) built it."""
        connection.execute(
            update(generations_table)
            .where(generations_table.c.projection == projection.name)
            .values(
                active=generation,
                active_version=projection.version if version is None else version,
                switched_at=datetime.now(UTC),
            )
        )

    @contextmanager
    def reading(self, projection: type[Projection]) -> Iterator[ActiveView]:
        """A read transaction on the active generation's tables, one snapshot
        throughout, during which those tables are not dropped even if readers
        are switched to another generation meanwhile.

        SQLite gives this by itself: a read transaction's snapshot includes the
        schema. On PostgreSQL the reader holds a shared advisory lock that
        ``drop_generation`` takes exclusively, and checks that the tables it
        resolved still exist, since a snapshot does not cover the catalog."""
        missing: int | None = None
        while True:
            with self.engine.connect() as connection:
                if self.is_postgres:
                    # READ COMMITTED would let a batch commit between two SELECTs.
                    connection.execution_options(isolation_level="REPEATABLE READ")
                with connection.begin():
                    if self.is_postgres:
                        connection.execute(
                            select(
                                func.pg_advisory_xact_lock_shared(
                                    self._readers_lock_key(connection, projection)
                                )
                            )
                        )
                    active = self.registry(connection, projection)
                    if active is None:
                        raise LookupError(
                            f"projection {projection.name} has no tables yet"
                        )
                    tables = generation_tables(projection, active.generation)
                    if self.is_postgres and not self._all_exist(connection, tables):
                        if active.generation == missing:
                            raise LookupError(
                                f"the tables of generation {active.generation} "
                                f"of {projection.name}, which serves readers, "
                                "are missing"
                            )
                        # Dropped between this snapshot and our lock: a new
                        # snapshot sees the generation that replaced it.
                        missing = active.generation
                        continue
                    yield ActiveView(
                        connection, active.generation, active.version, tables
                    )
                    return

    def _readers_lock_key(
        self, connection: Connection, projection: type[Projection]
    ) -> int:
        """PostgreSQL advisory lock that readers of a projection hold shared,
        and dropping one of its generations takes exclusively. Advisory locks
        are shared by every schema of a database, hence the schema in the key."""
        if self._schema is None:
            self._schema = connection.execute(select(func.current_schema())).scalar()
        name = f"eventshop readers {self._schema}.{projection.name}"
        digest = hashlib.blake2b(name.encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    @staticmethod
    def _all_exist(connection: Connection, tables: Mapping[str, Table]) -> bool:
        # to_regclass looks at the catalog as it is now, not as of the snapshot.
        found = connection.execute(
            select(*(func.to_regclass(table.name) for table in tables.values()))
        ).one()
        return all(oid is not None for oid in found)

    # -- positions -----------------------------------------------------------

    def position(self, subscriber: str, service: str) -> int | None:
        """The last notification id the subscriber has handled, if any."""
        with self.engine.connect() as connection:
            return self._position(connection, subscriber, service, lock=False)

    def locked_position(
        self, connection: Connection, subscriber: str, service: str
    ) -> int | None:
        """The position, read in the caller's write transaction and (on
        PostgreSQL) locked until it ends, so no batch can move it meanwhile."""
        return self._position(connection, subscriber, service, lock=True)

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
        durable: bool = True,
    ) -> bool:
        """Handles ``events`` into one generation's tables and moves its position
        from ``expected_position`` to ``new_position``, in one transaction.

        Returns False, having written nothing, if the stored position is not
        ``expected_position`` (another instance got there first), or, with
        ``only_if_active``, if readers were switched to another generation, or
        the active generation was built by another ``projection.version``: the
        caller must re-read its generation and position and carry on from there.

        ``durable=False`` is for a generation no reader sees yet (a rebuild's
        shadow): on PostgreSQL the commit does not wait for its WAL to reach
        the disk, and SQLite gets a larger page cache for the transaction. A
        crash may then lose the last commits, but never half of one: the rows
        and the position they bring the generation to commit together.
        """
        return self._tracked(
            projection,
            generation,
            _events_writer(projection, generation, events),
            expected_position=expected_position,
            new_position=new_position,
            only_if_active=only_if_active,
            durable=durable,
        )

    def _tracked(
        self,
        projection: type[Projection],
        generation: int,
        write: Callable[[Connection], None],
        *,
        expected_position: int | None,
        new_position: int,
        only_if_active: bool,
        durable: bool = True,
    ) -> bool:
        """Runs ``write`` and moves the position, in one transaction, as
        :meth:`apply` describes."""
        try:
            with (
                self.writer.begin() as connection,
                self._durability(connection, durable=durable),
            ):
                if only_if_active:
                    # Share-locked before the position, in the same order as a
                    # switch takes them, so that a switch and a batch queue up
                    # instead of deadlocking.
                    active = self.registry(connection, projection, lock="share")
                    if active != ActiveGeneration(generation, projection.version):
                        return False
                return self._move_after(
                    connection,
                    projection,
                    generation,
                    write,
                    expected_position=expected_position,
                    new_position=new_position,
                )
        except IntegrityError:
            if expected_position is None:
                # Two first batches raced to insert the tracking row.
                return False
            raise

    @contextmanager
    def _durability(self, connection: Connection, *, durable: bool) -> Iterator[None]:
        """The settings of a transaction that :meth:`apply` describes."""
        if durable:
            yield
        elif self.is_postgres:
            connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
            yield
        else:
            # The page cache is the connection's: back to the default before
            # the connection goes back to the pool (after a failure, it may
            # keep the larger one).
            connection.exec_driver_sql(BULK_PAGE_CACHE)
            yield
            connection.exec_driver_sql(DEFAULT_PAGE_CACHE)

    def apply_within(
        self,
        connection: Connection,
        projection: type[Projection],
        generation: int,
        events: Sequence[object],
        *,
        expected_position: int | None,
        new_position: int,
    ) -> bool:
        """What :meth:`apply` does, inside the caller's write transaction."""
        return self._move_after(
            connection,
            projection,
            generation,
            _events_writer(projection, generation, events),
            expected_position=expected_position,
            new_position=new_position,
        )

    def _move_after(
        self,
        connection: Connection,
        projection: type[Projection],
        generation: int,
        write: Callable[[Connection], None],
        *,
        expected_position: int | None,
        new_position: int,
    ) -> bool:
        subscriber = subscriber_name(projection, generation)
        current = self._position(connection, subscriber, projection.follows, lock=True)
        if current != expected_position:
            return False
        write(connection)
        self._move(connection, subscriber, projection.follows, current, new_position)
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

    # -- dead letters ----------------------------------------------------------

    def park(
        self,
        projection: type[Projection],
        generation: int,
        parked: ParkedEvent,
        failure: Failure,
        *,
        expected_position: int | None,
        only_if_active: bool = False,
    ) -> bool:
        """Records the event at ``parked.position`` as a dead letter of one
        generation of a projection and moves its position there, in one
        transaction; False, having written nothing, as :meth:`apply`."""
        row = {
            "dead_letter_id": dead_letter_id(
                subscriber_name(projection, generation), parked.position
            ),
            "projection": projection.name,
            "generation": generation,
            "service": projection.follows,
            "position": parked.position,
            "event_topic": parked.topic,
            "originator_id": parked.originator_id,
            "originator_version": parked.originator_version,
            "error": failure.error,
            "traceback": failure.traceback,
            "parked_at": datetime.now(UTC),
            "status": DeadLetterStatus.PARKED.value,
        }

        def record(connection: Connection) -> None:
            connection.execute(insert(dead_letters_table).values(**row))

        return self._tracked(
            projection,
            generation,
            record,
            expected_position=expected_position,
            new_position=parked.position,
            only_if_active=only_if_active,
        )

    def dead_letters(self) -> list[DeadLetterView]:
        """Every dead letter of every read model, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(dead_letters_table).order_by(
                    dead_letters_table.c.parked_at, dead_letters_table.c.position
                )
            ).all()
        return [_dead_letter_view(row._mapping) for row in rows]

    def dead_letter(self, dead_letter_id: UUID) -> DeadLetterView | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(dead_letters_table).where(
                    dead_letters_table.c.dead_letter_id == dead_letter_id
                )
            ).one_or_none()
        return None if row is None else _dead_letter_view(row._mapping)

    def retry_dead_letter(
        self, dead_letter_id: UUID, parked_event: Callable[[], object]
    ) -> None:
        """Handles the parked event into the generation it was parked from and
        marks the dead letter retried, in one transaction (under the dead
        letter's lock, so two retries cannot both apply it). That generation
        must still serve readers: after a rebuild the new one has handled the
        event (or parked it itself). If handling fails, nothing of it is
        written, the dead letter keeps the new error and
        DeadLetterRetryFailedError says so."""
        try:
            with self.writer.begin() as connection:
                row = self._parked_row(connection, dead_letter_id, "retry")
                projection = self.projections.get(row["projection"])
                active = (
                    None
                    if projection is None
                    else self.registry(connection, projection, lock="share")
                )
                if (
                    projection is None
                    or active is None
                    or active != ActiveGeneration(row["generation"], projection.version)
                ):
                    raise DeadLetterStateError(
                        dead_letter_id,
                        "retry",
                        f"generation {row['generation']} of {row['projection']} "
                        "no longer serves readers with this code (rebuild it instead)",
                    )
                write_batch(
                    connection,
                    projection,
                    generation_tables(projection, row["generation"]),
                    [parked_event()],
                )
                self._resolve(connection, dead_letter_id, DeadLetterStatus.RETRIED)
        except (DeadLetterNotFoundError, DeadLetterStateError):
            raise
        except Exception as error:
            failure = Failure.of(error)
            with self.writer.begin() as connection:
                connection.execute(
                    update(dead_letters_table)
                    .where(
                        dead_letters_table.c.dead_letter_id == dead_letter_id,
                        dead_letters_table.c.status == DeadLetterStatus.PARKED.value,
                    )
                    .values(error=failure.error, traceback=failure.traceback)
                )
            raise DeadLetterRetryFailedError(dead_letter_id, failure.error) from error

    def discard_dead_letter(self, dead_letter_id: UUID, reason: str) -> None:
        with self.writer.begin() as connection:
            self._parked_row(connection, dead_letter_id, "discard")
            self._resolve(
                connection, dead_letter_id, DeadLetterStatus.DISCARDED, reason=reason
            )

    def _parked_row(
        self, connection: Connection, dead_letter_id: UUID, action: str
    ) -> RowMapping:
        """The dead letter, locked for the rest of the transaction, if parked."""
        query = select(dead_letters_table).where(
            dead_letters_table.c.dead_letter_id == dead_letter_id
        )
        if self.is_postgres:
            query = query.with_for_update()
        row = connection.execute(query).one_or_none()
        if row is None:
            raise DeadLetterNotFoundError(dead_letter_id)
        if row.status != DeadLetterStatus.PARKED:
            raise DeadLetterStateError(dead_letter_id, action, f"it is {row.status}")
        return row._mapping

    @staticmethod
    def _resolve(
        connection: Connection,
        dead_letter_id: UUID,
        status: DeadLetterStatus,
        reason: str | None = None,
    ) -> None:
        connection.execute(
            update(dead_letters_table)
            .where(dead_letters_table.c.dead_letter_id == dead_letter_id)
            .values(
                status=status.value,
                resolved_at=datetime.now(UTC),
                discard_reason=reason,
            )
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
                    heartbeat_at=as_utc(row.heartbeat_at),
                    error=row.error,
                )
            )
        return reports

    # -- comparing generations -------------------------------------------------

    def checksums(
        self, projection: type[Projection], generation: int, connection: Connection
    ) -> dict[str, tuple[int, int]]:
        """(row count, order-independent checksum) of each table of a generation."""
        return {
            name: self.table_checksum(connection, table)
            for name, table in generation_tables(projection, generation).items()
        }

    @staticmethod
    def table_checksum(connection: Connection, table: Table) -> tuple[int, int]:
        """(row count, order-independent checksum) of one table: the sum of a
        hash of each row, so equal multisets of rows agree whatever order the
        database returns them in. PostgreSQL sums in the server (a quarter of
        an audit index's verified rebuild went to reading its rows back);
        SQLite's rows are read in chunks and hashed here."""
        if connection.dialect.name == "postgresql":
            return _server_checksum(connection, table)
        count = 0
        digest = 0
        # The driver's own values, not SQLAlchemy's: both generations sit in
        # one database with the same column types, so equal rows read back
        # equal, and skipping the result processing (UUIDs, times) was 40 % of
        # a rebuild of the orders view.
        rows = connection.exec_driver_sql(
            str(select(table).compile(dialect=connection.dialect)),
            execution_options={"yield_per": CHECKSUM_CHUNK_ROWS},
        )
        for row in rows:
            count += 1
            digest = (digest + zlib.crc32(repr(tuple(row)).encode())) % CHECKSUM_MODULUS
        return count, digest


CHECKSUM_MODULUS = 2**64


def _server_checksum(connection: Connection, table: Table) -> tuple[int, int]:
    """What :meth:`ViewStore.table_checksum` computes, summed by PostgreSQL:
    a 64-bit hash of each row's text form. Both generations are compared in
    one database with the same column types, so equal rows have equal text."""
    name = connection.dialect.identifier_preparer.format_table(table)
    row = connection.exec_driver_sql(
        "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) "
        f"FROM {name} AS t"
    ).one()
    return int(row[0]), int(row[1]) % CHECKSUM_MODULUS
