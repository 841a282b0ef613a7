"""The one object callers hold: the view store, composed of one part per job.

Callers reach the part whose job they need (``store.positions.apply``,
``store.dead_letters.retry``); the store itself only builds the parts and
creates the schema they share."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from projections.read_model import ReadModel
from projections.store.dead_letters import DeadLetterStore
from projections.store.generations import Generations
from projections.store.positions import Positions
from projections.store.registry import GenerationRegistry
from projections.store.reports import SubscriberReports
from projections.store.schema import StoreDatabase, create_system_tables


class ViewStore:
    """Read models and their positions in one SQLAlchemy database."""

    def __init__(self, engine: Engine, projections: Sequence[type[ReadModel]]):
        self.database = StoreDatabase.of(engine)
        self.engine = engine
        self.writer = self.database.writer
        self.is_postgres = self.database.is_postgres
        self.projections = {projection.name: projection for projection in projections}
        #: Which generation of each read model serves readers.
        self.registry = GenerationRegistry(self.database)
        #: Reserving, creating and dropping generations.
        self.generations = Generations(self.database, self.registry)
        #: Tracking positions, and writing a batch with its position.
        self.positions = Positions(self.database, self.registry)
        #: Events read models gave up on.
        self.dead_letters = DeadLetterStore(
            self.database, self.registry, self.positions, self.projections
        )
        #: What each subscriber instance last said about itself.
        self.reports = SubscriberReports(self.database)

    def create_schema(self) -> None:
        """Creates what is missing: system tables, a registry row and the active
        generation's tables for every projection. Idempotent; safe to run from
        many processes at once."""
        with self.database.schema_change() as connection:
            create_system_tables(connection)
            for projection in self.projections.values():
                self.generations.create_first(connection, projection)
