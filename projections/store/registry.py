"""The registry of which generation of each projection serves readers, and the
read transactions that see one generation throughout."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Connection, Table, func, insert, select, update

from projections.read_model import ReadModel, generation_tables
from projections.store.schema import StoreDatabase
from projections.store.tables import generations_table


@dataclass(frozen=True)
class ActiveGeneration:
    """What the registry says serves readers of one projection."""

    generation: int
    version: int


@dataclass(frozen=True)
class ActiveView:
    """The active generation's tables, and a read transaction in which they
    cannot be dropped (see :meth:`GenerationRegistry.reading`)."""

    connection: Connection
    generation: int
    version: int
    tables: Mapping[str, Table]

    def table(self, name: str) -> Table:
        return self.tables[name]


RegistryLock = Literal["share", "update"]


class GenerationRegistry:
    """Which generation of each projection readers see, and which version of
    its code built it."""

    def __init__(self, database: StoreDatabase) -> None:
        self.database = database
        self._schema: str | None = None

    def active_generation(self, projection: type[ReadModel]) -> int:
        with self.database.engine.connect() as connection:
            generation = self.active_generation_in(connection, projection.name)
        if generation is None:
            raise LookupError(f"projection {projection.name} has no tables yet")
        return generation

    def active_tables(self, projection: type[ReadModel]) -> Mapping[str, Table]:
        """The tables readers should query now."""
        return generation_tables(projection, self.active_generation(projection))

    @staticmethod
    def active_generation_in(connection: Connection, name: str) -> int | None:
        """The active generation of the projection ``name``, read in the
        caller's transaction."""
        return connection.execute(
            select(generations_table.c.active).where(
                generations_table.c.projection == name
            )
        ).scalar_one_or_none()

    def active(self, projection: type[ReadModel]) -> ActiveGeneration:
        """The active generation of a projection and the version that built it."""
        with self.database.engine.connect() as connection:
            active = self.read(connection, projection)
        if active is None:
            raise LookupError(f"projection {projection.name} has no tables yet")
        return active

    def read(
        self,
        connection: Connection,
        projection: type[ReadModel],
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
        if lock is not None and self.database.is_postgres:
            query = query.with_for_update(read=lock == "share")
        row = connection.execute(query).one_or_none()
        if row is None:
            return None
        return ActiveGeneration(generation=row.active, version=row.active_version)

    @staticmethod
    def register(
        connection: Connection, projection: type[ReadModel], generation: int
    ) -> None:
        """Adds the registry row of a projection it has none for, naming
        ``generation``, built by the projection's version, as the active one."""
        connection.execute(
            insert(generations_table).values(
                projection=projection.name,
                active=generation,
                active_version=projection.version,
                switched_at=datetime.now(UTC),
            )
        )

    @staticmethod
    def switch(
        projection: type[ReadModel],
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
    def reading(self, projection: type[ReadModel]) -> Iterator[ActiveView]:
        """A read transaction on the active generation's tables, one snapshot
        throughout, during which those tables are not dropped even if readers
        are switched to another generation meanwhile.

        SQLite gives this by itself: a read transaction's snapshot includes the
        schema. On PostgreSQL the reader holds a shared advisory lock that
        dropping a generation takes exclusively, and checks that the tables it
        resolved still exist, since a snapshot does not cover the catalog."""
        is_postgres = self.database.is_postgres
        missing: int | None = None
        while True:
            with self.database.engine.connect() as connection:
                if is_postgres:
                    # READ COMMITTED would let a batch commit between two SELECTs.
                    connection.execution_options(isolation_level="REPEATABLE READ")
                with connection.begin():
                    if is_postgres:
                        connection.execute(
                            select(
                                func.pg_advisory_xact_lock_shared(
                                    self.readers_lock_key(connection, projection)
                                )
                            )
                        )
                    active = self.read(connection, projection)
                    if active is None:
                        raise LookupError(
                            f"projection {projection.name} has no tables yet"
                        )
                    tables = generation_tables(projection, active.generation)
                    if is_postgres and not _all_exist(connection, tables):
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

    def readers_lock_key(
        self, connection: Connection, projection: type[ReadModel]
    ) -> int:
        """PostgreSQL advisory lock that readers of a projection hold shared,
        and dropping one of its generations takes exclusively. Advisory locks
        are shared by every schema of a database, hence the schema in the key."""
        if self._schema is None:
            self._schema = connection.execute(select(func.current_schema())).scalar()
        name = f"eventshop readers {self._schema}.{projection.name}"
        digest = hashlib.blake2b(name.encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


def _all_exist(connection: Connection, tables: Mapping[str, Table]) -> bool:
    # to_regclass looks at the catalog as it is now, not as of the snapshot.
    found = connection.execute(
        select(*(func.to_regclass(table.name) for table in tables.values()))
    ).one()
    return all(oid is not None for oid in found)
