"""Where each subscriber is in the log it follows, and the transactions that
write what a batch of events did together with the position it brings the
subscriber to.

A batch of events and the position it brings a subscriber to are written in one
transaction, and only if the stored position is still the one the subscriber
started from; so a crash, a redelivery or a second instance of the same
subscriber can never apply an event twice or skip one."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from projections.batching.flush import write_batch
from projections.read_model import ReadModel, generation_tables
from projections.store.generations import subscriber_name
from projections.store.registry import ActiveGeneration, GenerationRegistry
from projections.store.schema import StoreDatabase
from projections.store.tables import tracking_table

# SQLite page cache of a transaction that writes a shadow generation (64 MiB),
# and SQLite's default (2 MiB), which the engine keeps.
BULK_PAGE_CACHE = "PRAGMA cache_size = -65536"
DEFAULT_PAGE_CACHE = "PRAGMA cache_size = -2000"

# Writes what a batch did into one generation's tables, in the caller's
# transaction.
RowWriter = Callable[[Connection], None]


class Positions:
    """The tracking rows, and the writes that move them."""

    def __init__(self, database: StoreDatabase, registry: GenerationRegistry) -> None:
        self.database = database
        self.registry = registry

    def position(self, subscriber: str, service: str) -> int | None:
        """The last notification id the subscriber has handled, if any."""
        with self.database.engine.connect() as connection:
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
        if lock and self.database.is_postgres:
            query = query.with_for_update()
        return connection.execute(query).scalar_one_or_none()

    def apply(
        self,
        projection: type[ReadModel],
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
        return self.tracked(
            projection,
            generation,
            _events_writer(projection, generation, events),
            expected_position=expected_position,
            new_position=new_position,
            only_if_active=only_if_active,
            durable=durable,
        )

    def tracked(
        self,
        projection: type[ReadModel],
        generation: int,
        write: RowWriter,
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
                self.database.writer.begin() as connection,
                self._durability(connection, durable=durable),
            ):
                if only_if_active:
                    # Share-locked before the position, in the same order as a
                    # switch takes them, so that a switch and a batch queue up
                    # instead of deadlocking.
                    active = self.registry.read(connection, projection, lock="share")
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
        elif self.database.is_postgres:
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
        projection: type[ReadModel],
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
        projection: type[ReadModel],
        generation: int,
        write: RowWriter,
        *,
        expected_position: int | None,
        new_position: int,
    ) -> bool:
        subscriber = subscriber_name(projection, generation)
        current = self._position(connection, subscriber, projection.follows, lock=True)
        if current != expected_position:
            return False
        write(connection)
        _move(connection, subscriber, projection.follows, current, new_position)
        return True


def _events_writer(
    projection: type[ReadModel], generation: int, events: Sequence[object]
) -> RowWriter:
    """Writes ``events`` into one generation's tables."""
    tables = generation_tables(projection, generation)

    def write(connection: Connection) -> None:
        write_batch(connection, projection, tables, events)

    return write


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
