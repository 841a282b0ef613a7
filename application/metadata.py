"""Audit metadata carried by every stored event: who (actor), which user action it
belongs to (correlation id) and what caused it (causation id).

The metadata travels beside the event's own attributes, under one reserved key
of the stored state, so the domain never sees it and the tamper-evident hash of
the stored bytes covers it. Commands run inside :func:`acting_as` (the ``Shop``
opens one per call, or callers open one around a block of calls); reactions of
process managers run inside :func:`caused_by`, which keeps the correlation id and
names the event that caused them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import DomainEventProtocol, Snapshot
from eventsourcing.persistence import Mapper, StoredEvent

from domain.values import parse_text

METADATA_KEY = "_meta"
SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class EventMetadata:
    actor: str
    correlation_id: UUID
    causation_id: str | None = None

    def as_state(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EventMetadata:
        return cls(
            actor=state["actor"],
            correlation_id=state["correlation_id"],
            causation_id=state.get("causation_id"),
        )


_current: ContextVar[EventMetadata | None] = ContextVar(
    "eventshop_event_metadata", default=None
)


def current_metadata() -> EventMetadata | None:
    return _current.get()


@contextmanager
def acting_as(
    actor: str = SYSTEM_ACTOR, correlation_id: UUID | None = None
) -> Iterator[EventMetadata]:
    """Events recorded inside the block are one user action by ``actor``.

    Inside an outer block with no ``correlation_id`` of its own, the outer
    action's id is kept, so a block of calls stays one action."""
    outer = _current.get()
    if correlation_id is None:
        correlation_id = outer.correlation_id if outer else uuid4()
    metadata = EventMetadata(
        actor=parse_text(actor, "actor"),
        correlation_id=correlation_id,
        causation_id=None,
    )
    token = _current.set(metadata)
    try:
        yield metadata
    finally:
        _current.reset(token)


def event_id(event: DomainEventProtocol[Any]) -> str:
    """A stable identity for a stored event: its aggregate id and version."""
    return f"{event.originator_id}:{event.originator_version}"


def metadata_of(event: DomainEventProtocol[Any]) -> EventMetadata | None:
    """The metadata a stored event was recorded with (None for events stored
    before metadata existed)."""
    state = vars(event).get(METADATA_KEY)
    return EventMetadata.from_state(state) if state else None


@contextmanager
def caused_by(event: DomainEventProtocol[Any], actor: str) -> Iterator[EventMetadata]:
    """Events recorded inside the block are reactions (by ``actor``, a process
    manager) to ``event``: same correlation id, causation id = the event's id."""
    cause = metadata_of(event)
    metadata = EventMetadata(
        actor=actor,
        correlation_id=cause.correlation_id if cause else uuid4(),
        causation_id=event_id(event),
    )
    token = _current.set(metadata)
    try:
        yield metadata
    finally:
        _current.reset(token)


def stamp_metadata(events: Iterable[DomainEventProtocol[Any]]) -> None:
    """Fixes the current metadata onto events that will be stored later, outside
    the block that caused them (as a process manager's batch is)."""
    metadata = _current.get() or EventMetadata(SYSTEM_ACTOR, uuid4())
    for domain_event in events:
        # Snapshots are derived data, not something anybody did.
        if not isinstance(domain_event, Snapshot):
            # The event is frozen for its declared fields only; the reserved
            # key rides in its __dict__ so the base mapper encodes it.
            vars(domain_event).setdefault(METADATA_KEY, metadata.as_state())


class MetadataMapper(Mapper[UUID]):
    """Stores the current metadata with each new event, and gives it back with
    the event when read (as ``vars(event)["_meta"]``, see :func:`metadata_of`)."""

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        stamp_metadata([domain_event])
        return super().to_stored_event(domain_event)
