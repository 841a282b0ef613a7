"""The events read models gave up on.

An event a read model gives up on is parked as a row of the dead-letter table,
written in the transaction that moves its position past the event; a retry
handles it and marks the row retried in one transaction, under the row's lock."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import Connection, RowMapping, insert, select, update

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
from projections.batching.flush import write_batch
from projections.read_model import ReadModel, generation_tables
from projections.store.engine import as_utc
from projections.store.generations import subscriber_name
from projections.store.positions import Positions
from projections.store.registry import ActiveGeneration, GenerationRegistry
from projections.store.schema import StoreDatabase
from projections.store.tables import dead_letters_table


class DeadLetterStore:
    """Parks events, lists the parked ones, retries or discards them."""

    def __init__(
        self,
        database: StoreDatabase,
        registry: GenerationRegistry,
        positions: Positions,
        projections: Mapping[str, type[ReadModel]],
    ) -> None:
        self.database = database
        self.registry = registry
        self.positions = positions
        self.projections = projections

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
        """Records the event at ``parked.position`` as a dead letter of one
        generation of a projection and moves its position there, in one
        transaction; False, having written nothing, as :meth:`Positions.apply`."""
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

        return self.positions.tracked(
            projection,
            generation,
            record,
            expected_position=expected_position,
            new_position=parked.position,
            only_if_active=only_if_active,
        )

    def all(self) -> list[DeadLetterView]:
        """Every dead letter of every read model, oldest first."""
        with self.database.engine.connect() as connection:
            rows = connection.execute(
                select(dead_letters_table).order_by(
                    dead_letters_table.c.parked_at, dead_letters_table.c.position
                )
            ).all()
        return [_dead_letter_view(row._mapping) for row in rows]

    def get(self, dead_letter_id: UUID) -> DeadLetterView | None:
        with self.database.engine.connect() as connection:
            row = connection.execute(
                select(dead_letters_table).where(
                    dead_letters_table.c.dead_letter_id == dead_letter_id
                )
            ).one_or_none()
        return None if row is None else _dead_letter_view(row._mapping)

    def retry(self, dead_letter_id: UUID, parked_event: Callable[[], object]) -> None:
        """Handles the parked event into the generation it was parked from and
        marks the dead letter retried, in one transaction (under the dead
        letter's lock, so two retries cannot both apply it). That generation
        must still serve readers: after a rebuild the new one has handled the
        event (or parked it itself). If handling fails, nothing of it is
        written, the dead letter keeps the new error and
        DeadLetterRetryFailedError says so."""
        try:
            with self.database.writer.begin() as connection:
                row = self._parked_row(connection, dead_letter_id, "retry")
                projection = self.projections.get(row["projection"])
                active = (
                    None
                    if projection is None
                    else self.registry.read(connection, projection, lock="share")
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
                _resolve(connection, dead_letter_id, DeadLetterStatus.RETRIED)
        except (DeadLetterNotFoundError, DeadLetterStateError):
            raise
        except Exception as error:
            failure = Failure.of(error)
            with self.database.writer.begin() as connection:
                connection.execute(
                    update(dead_letters_table)
                    .where(
                        dead_letters_table.c.dead_letter_id == dead_letter_id,
                        dead_letters_table.c.status == DeadLetterStatus.PARKED.value,
                    )
                    .values(error=failure.error, traceback=failure.traceback)
                )
            raise DeadLetterRetryFailedError(dead_letter_id, failure.error) from error

    def discard(self, dead_letter_id: UUID, reason: str) -> None:
        with self.database.writer.begin() as connection:
            self._parked_row(connection, dead_letter_id, "discard")
            _resolve(
                connection, dead_letter_id, DeadLetterStatus.DISCARDED, reason=reason
            )

    def _parked_row(
        self, connection: Connection, dead_letter_id: UUID, action: str
    ) -> RowMapping:
        """The dead letter, locked for the rest of the transaction, if parked."""
        query = select(dead_letters_table).where(
            dead_letters_table.c.dead_letter_id == dead_letter_id
        )
        if self.database.is_postgres:
            query = query.with_for_update()
        row = connection.execute(query).one_or_none()
        if row is None:
            raise DeadLetterNotFoundError(dead_letter_id)
        if row.status != DeadLetterStatus.PARKED:
            raise DeadLetterStateError(dead_letter_id, action, f"it is {row.status}")
        return row._mapping


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
