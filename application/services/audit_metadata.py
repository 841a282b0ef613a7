"""Audit metadata carried by every stored event: who (actor), which user action it
belongs to (correlation id) and what caused it (causation id).

The metadata travels beside the event's own attributes, under one reserved key
of the stored state, so aggregates never see it and the tamper-evident hash of
the stored bytes covers it. Commands run inside :func:`acting_as` (the ``Shop``
opens one per call, or callers open one around a block of calls); reactions of
process managers run inside :func:`caused_by`, which keeps the correlation id and
names the event that caused them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import DomainEventProtocol, Snapshot
from eventsourcing.persistence import (
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
)

from domain.metadata import METADATA_KEY, EventMetadata, event_id, metadata_of
from domain.values import parse_id, parse_text

__all__ = [
    "METADATA_KEY",
    "SYSTEM_ACTOR",
    "EventMetadata",
    "MetadataMapper",
    "acting_as",
    "caused_by",
    "current_metadata",
    "event_id",
    "metadata_of",
    "stamp_metadata",
]

SYSTEM_ACTOR = "system"


_current: ContextVar[EventMetadata | None] = ContextVar(
    "eventshop_event_metadata", default=None
)


def current_metadata() -> EventMetadata | None:
    return _current.get()


@contextmanager
def acting_as(
    actor: str | None = None, correlation_id: UUID | None = None
) -> Iterator[EventMetadata]:
    """Events recorded inside the block are one user action by ``actor``.

    Inside an outer block, whatever is not given here is the outer action's
    (so a block of calls stays one action); outside any, the actor is
    "system" and the action gets a new correlation id."""
    outer = _current.get()
    if actor is None:
        actor = outer.actor if outer else SYSTEM_ACTOR
    if correlation_id is None:
        correlation_id = outer.correlation_id if outer else uuid4()
    metadata = EventMetadata(
        actor=parse_text(actor, "actor"),
        correlation_id=parse_id(correlation_id, "correlation_id"),
        causation_id=None,
    )
    token = _current.set(metadata)
    try:
        yield metadata
    finally:
        _current.reset(token)


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
    metadata = _current.get()
    for domain_event in events:
        # Snapshots are derived data, not something anybody did.
        if not isinstance(domain_event, Snapshot):
            # The event is frozen for its declared fields only; the reserved
            # key rides in its __dict__ so the base mapper encodes it.
            state = vars(domain_event)
            if METADATA_KEY not in state:
                # Made only when needed: a process manager's batch, already
                # stamped, is stored outside any action (a uuid4 per event).
                metadata = metadata or EventMetadata(SYSTEM_ACTOR, uuid4())
                state[METADATA_KEY] = metadata.as_state()


class MetadataMapper(Mapper[UUID]):
    """Stores the current metadata with each new event, and gives it back with
    the event when read (as ``vars(event)["_meta"]``, see :func:`metadata_of`)."""

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        stamp_metadata([domain_event])
        return super().to_stored_event(domain_event)

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        # The library fills the event's __dict__ with whatever the state holds:
        # a state without the class's fields would decode, and fail later in
        # whoever reads the event, far from the cause.
        domain_event = super().to_domain_event(stored_event)
        missing = _required_fields(type(domain_event)) - vars(domain_event).keys()
        if missing:
            raise MapperDeserialisationError(
                f"state of stored event with topic '{stored_event.topic}', "
                f"originator_id '{stored_event.originator_id}' and "
                f"originator_version {stored_event.originator_version} lacks "
                f"the fields {', '.join(sorted(missing))}"
            )
        return domain_event


@cache
def _required_fields(cls: type) -> frozenset[str]:
    """The fields an event of ``cls`` must have: those with no default (after
    upcasting, which gives old events the fields added since)."""
    if not dataclasses.is_dataclass(cls):
        return frozenset()
    return frozenset(
        field.name
        for field in dataclasses.fields(cls)
        if field.default is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    )
