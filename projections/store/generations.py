"""The generations of a projection's tables: numbering a new one, creating its
tables (with the indexes a rebuild may build later) and dropping an old one."""

from __future__ import annotations

import re

from sqlalchemy import Connection, func, insert, inspect, select

from projections.read_model import ReadModel, deferrable_indexes, generation_tables
from projections.store.registry import GenerationRegistry
from projections.store.schema import StoreDatabase, create_generation_tables
from projections.store.tables import tracking_table


def subscriber_name(projection: type[ReadModel], generation: int) -> str:
    """The tracking name of one generation of a projection."""
    return f"{projection.name}@g{generation}"


_GENERATION_SUFFIX = re.compile(r"_g(\d+)$")


class Generations:
    """Creates and drops the generations of each projection's tables."""

    def __init__(self, database: StoreDatabase, registry: GenerationRegistry) -> None:
        self.database = database
        self.registry = registry

    def create_first(self, connection: Connection, projection: type[ReadModel]) -> None:
        """Registers generation 1 of a projection the registry does not know
        yet and creates its tables, in the caller's schema change."""
        if self.registry.active_generation_in(connection, projection.name) is not None:
            # Its active generation may be another version's: a rebuild, not
            # start-up, creates the tables of a new one.
            return
        self.registry.register(connection, projection, 1)
        create_generation_tables(connection, projection, 1)

    def create(self, projection: type[ReadModel], generation: int) -> None:
        """Creates (empty) the tables of one generation of a projection."""
        with self.database.schema_change() as connection:
            create_generation_tables(connection, projection, generation)

    def reserve(
        self, projection: type[ReadModel], *, defer_indexes: bool = False
    ) -> int:
        """Picks a generation number no one has used for this projection, creates
        its (empty) tables and its tracking row at position 0, in one schema
        change: two rebuilds started at once get different numbers.

        With ``defer_indexes``, on PostgreSQL, the indexes that neither keep
        rows unique nor serve the projection's ``loads`` are left for
        :meth:`create_indexes`: building an index over a filled table costs a
        fraction of keeping it up to date row by row. (SQLite would hold the
        whole database's write lock while building one.)"""
        with self.database.schema_change() as connection:
            generation = 1 + max(
                self._used_generations(connection, projection), default=0
            )
            deferred = (
                deferrable_indexes(projection, generation)
                if defer_indexes and self.database.is_postgres
                else ()
            )
            create_generation_tables(connection, projection, generation, deferred)
            connection.execute(
                insert(tracking_table).values(
                    subscriber=subscriber_name(projection, generation),
                    service=projection.follows,
                    position=0,
                )
            )
        return generation

    def _used_generations(
        self, connection: Connection, projection: type[ReadModel]
    ) -> set[int]:
        """Numbers named by the registry, by tracking rows, or by tables that
        look like one of the projection's (left over by a crashed rebuild)."""
        used: set[int] = set()
        active = self.registry.active_generation_in(connection, projection.name)
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

    def drop(self, projection: type[ReadModel], generation: int) -> None:
        """Drops the tables and the tracking of one (inactive) generation."""
        with self.database.schema_change() as connection:
            if self.database.is_postgres:
                # Waits for readers that may have resolved this generation
                # before it was switched away (see ``GenerationRegistry.reading``).
                connection.execute(
                    select(
                        func.pg_advisory_xact_lock(
                            self.registry.readers_lock_key(connection, projection)
                        )
                    )
                )
            if (
                self.registry.active_generation_in(connection, projection.name)
                == generation
            ):
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

    def create_indexes(self, projection: type[ReadModel], generation: int) -> None:
        """Creates the indexes of a generation's tables that are missing (see
        :meth:`reserve`)."""
        with self.database.schema_change() as connection:
            for table in generation_tables(projection, generation).values():
                for index in table.indexes:
                    index.create(connection, checkfirst=True)
