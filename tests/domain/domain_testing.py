"""Given/when/then helpers shared by the domain tests.

Named ``domain_testing`` rather than ``helpers`` so that no two helper modules
under ``tests/`` share a name. They import nothing of the application's or the
projections' (``tests/test_architecture.py`` checks): the domain is tested on its
own. The JSON mapper is ``tests.support.domain_transcoding``'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate, CanMutateAggregate, DomainEventProtocol
from eventsourcing.persistence import Mapper

from tests.support.domain_transcoding import json_mapper

__all__ = ["json_mapper", "replay", "stored_and_loaded", "then_nothing", "then_one"]

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


def replay(cls: type[A], events: Iterable[DomainEventProtocol[UUID]]) -> A:
    """Rebuilds an aggregate from its history by hand, as a repository would
    but without any snapshot (the application tests fold stored events)."""
    aggregate: Aggregate | None = None
    for past_event in events:
        assert isinstance(past_event, CanMutateAggregate)
        aggregate = past_event.mutate(aggregate)
    assert isinstance(aggregate, cls)
    return aggregate


def stored_and_loaded(
    domain_event: DomainEventProtocol[UUID], mapper: Mapper[UUID]
) -> Any:
    """The event as it comes back from the store: JSON bytes and back."""
    return mapper.to_domain_event(mapper.to_stored_event(domain_event))
