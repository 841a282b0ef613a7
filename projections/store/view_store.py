"""The one object callers hold: the view store, composed of one part per job."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from uuid import UUID

from sqlalchemy import Connection, Engine, Table

from domain.dead_letter import DeadLetterView, Failure, ParkedEvent
from projections.read_model import ReadModel
from projections.store import comparison
from projections.store.dead_letters import DeadLetterStore
from projections.store.generations import Generations
from projections.store.positions import Positions
from projections.store.registry import (
    ActiveGeneration,
    ActiveView,
    GenerationRegistry,
    RegistryLock,
)
from projections.store.reports import SubscriberReport, SubscriberReports
from projections.store.schema import StoreDatabase, create_system_tables


class ViewStore:
    """Read models and their positions in one SQLAlchemy database.

    Each method hands its work to the part of the store whose job it is; their
    docstrings say what it does."""

    def __init__(self, engine: Engine, projections: Sequence[type[ReadModel]]):
        self.database = StoreDatabase.of(engine)
        self.engine = engine
        self.writer = self.database.writer
        self.is_postgres = self.database.is_postgres
        self.projections = {projection.name: projection for projection in projections}
        self.generation_registry = GenerationRegistry(self.database)
        self.generations = Generations(self.database, self.generation_registry)
        self.positions = Positions(self.database, self.generation_registry)
        self.dead_letter_store = DeadLetterStore(
            self.database, self.generation_registry, self.positions, self.projections
        )
        self.subscriber_reports = SubscriberReports(self.database)

    # -- schema --------------------------------------------------------------

    def schema_change(self) -> AbstractContextManager[Connection]:
        """A transaction in which no other process changes the schema."""
        return self.database.schema_change()

    def create_schema(self) -> None:
        """Creates what is missing: system tables, a registry row and the active
        generation's tables for every projection. Idempotent; safe to run from
        many processes at once."""
        with self.schema_change() as connection:
            create_system_tables(connection)
            for projection in self.projections.values():
                self.generations.create_first(connection, projection)

    # -- generations ---------------------------------------------------------

    def create_generation(self, projection: type[ReadModel], generation: int) -> None:
        """See :meth:`Generations.create`."""
        self.generations.create(projection, generation)

    def reserve_generation(
        self, projection: type[ReadModel], *, defer_indexes: bool = False
    ) -> int:
        """See :meth:`Generations.reserve`."""
        return self.generations.reserve(projection, defer_indexes=defer_indexes)

    def drop_generation(self, projection: type[ReadModel], generation: int) -> None:
        """See :meth:`Generations.drop`."""
        self.generations.drop(projection, generation)

    def create_indexes(self, projection: type[ReadModel], generation: int) -> None:
        """See :meth:`Generations.create_indexes`."""
        self.generations.create_indexes(projection, generation)

    def active_generation(self, projection: type[ReadModel]) -> int:
        """See :meth:`GenerationRegistry.active_generation`."""
        return self.generation_registry.active_generation(projection)

    def active_tables(self, projection: type[ReadModel]) -> Mapping[str, Table]:
        """See :meth:`GenerationRegistry.active_tables`."""
        return self.generation_registry.active_tables(projection)

    def active(self, projection: type[ReadModel]) -> ActiveGeneration:
        """See :meth:`GenerationRegistry.active`."""
        return self.generation_registry.active(projection)

    def registry(
        self,
        connection: Connection,
        projection: type[ReadModel],
        *,
        lock: RegistryLock | None = None,
    ) -> ActiveGeneration | None:
        """See :meth:`GenerationRegistry.read`."""
        return self.generation_registry.read(connection, projection, lock=lock)

    def switch(
        self,
        projection: type[ReadModel],
        generation: int,
        connection: Connection,
        *,
        version: int | None = None,
    ) -> None:
        """See :meth:`GenerationRegistry.switch`."""
        self.generation_registry.switch(
            projection, generation, connection, version=version
        )

    def reading(
        self, projection: type[ReadModel]
    ) -> AbstractContextManager[ActiveView]:
        """See :meth:`GenerationRegistry.reading`."""
        return self.generation_registry.reading(projection)

    # -- positions -----------------------------------------------------------

    def position(self, subscriber: str, service: str) -> int | None:
        """See :meth:`Positions.position`."""
        return self.positions.position(subscriber, service)

    def locked_position(
        self, connection: Connection, subscriber: str, service: str
    ) -> int | None:
        """See :meth:`Positions.locked_position`."""
        return self.positions.locked_position(connection, subscriber, service)

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
        """See :meth:`Positions.apply`."""
        return self.positions.apply(
            projection,
            generation,
            events,
            expected_position=expected_position,
            new_position=new_position,
            only_if_active=only_if_active,
            durable=durable,
        )

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
        """See :meth:`Positions.apply_within`."""
        return self.positions.apply_within(
            connection,
            projection,
            generation,
            events,
            expected_position=expected_position,
            new_position=new_position,
        )

    # -- dead letters ----------------------------------------------------------

    def park(
        self,
        projection: type[ReadModel],
        generation: int,
        parked: ParkedEvent,
        failure: Failure,
        *,
        expected_position: int | None,
        only_if_active: bool = False,
    ) -> bool:
        """See :meth:`DeadLetterStore.park`."""
        return self.dead_letter_store.park(
            projection,
            generation,
            parked,
            failure,
            expected_position=expected_position,
            only_if_active=only_if_active,
        )

    def dead_letters(self) -> list[DeadLetterView]:
        """See :meth:`DeadLetterStore.all`."""
        return self.dead_letter_store.all()

    def dead_letter(self, dead_letter_id: UUID) -> DeadLetterView | None:
        """See :meth:`DeadLetterStore.get`."""
        return self.dead_letter_store.get(dead_letter_id)

    def retry_dead_letter(
        self, dead_letter_id: UUID, parked_event: Callable[[], object]
    ) -> None:
        """See :meth:`DeadLetterStore.retry`."""
        self.dead_letter_store.retry(dead_letter_id, parked_event)

    def discard_dead_letter(self, dead_letter_id: UUID, reason: str) -> None:
        """See :meth:`DeadLetterStore.discard`."""
        self.dead_letter_store.discard(dead_letter_id, reason)

    # -- what subscribers report about themselves ----------------------------

    def report(self, subscriber: str, state: str, error: str | None = None) -> None:
        """See :meth:`SubscriberReports.report`."""
        self.subscriber_reports.report(subscriber, state, error)

    def reports(self) -> dict[str, list[SubscriberReport]]:
        """See :meth:`SubscriberReports.reports`."""
        return self.subscriber_reports.reports()

    # -- comparing generations -------------------------------------------------

    def checksums(
        self, projection: type[ReadModel], generation: int, connection: Connection
    ) -> dict[str, tuple[int, int]]:
        """See :func:`comparison.checksums`."""
        return comparison.checksums(projection, generation, connection)

    @staticmethod
    def table_checksum(connection: Connection, table: Table) -> tuple[int, int]:
        """See :func:`comparison.table_checksum`."""
        return comparison.table_checksum(connection, table)
