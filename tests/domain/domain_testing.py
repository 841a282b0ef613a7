"""Given/when/then helpers shared by the domain tests.

Named ``domain_testing`` rather than ``helpers`` because test folders have no
``__init__.py``: every module basename under ``tests/`` must be unique.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate, CanMutateAggregate, DomainEventProtocol
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    UUIDAsHex,
)

from application.services.base import LineAsDict

A = TypeVar("A", bound=Aggregate)
E = TypeVar("E")


def then_one(aggregate: Aggregate, event_type: type[E]) -> E:
    """Then exactly one new event, of this type (returned for further checks)."""
    events = list(aggregate.collect_events())
    assert [type(e).__qualname__ for e in events] == [event_type.__qualname__]
    [new_event] = events
    assert isinstance(new_event, event_type)
    return new_event


def then_nothing(aggregate: Aggregate) -> None:
    """Then no new event: nothing would be written."""
    assert list(aggregate.collect_events()) == []


def replay(cls: type[A], events: Iterable[CanMutateAggregate[UUID]]) -> A:
    """Rebuilds an aggregate from its history, as a repository would."""
    aggregate: A | None = None
    for past_event in events:
        aggregate = past_event.mutate(aggregate)
    assert isinstance(aggregate, cls)
    return aggregate


def json_mapper() -> Mapper[UUID]:
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), LineAsDict()):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)


def stored_and_loaded(
    domain_event: DomainEventProtocol[UUID], mapper: Mapper[UUID]
) -> Any:
    """The event as it comes back from the store: JSON bytes and back."""
    return mapper.to_domain_event(mapper.to_stored_event(domain_event))
