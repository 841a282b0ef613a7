"""A batch of reactions: the aggregates they need, loaded before they run, and
what they change, recorded at once.

A reaction declares with :func:`needs` which aggregates it loads, as a pure
function of its event, or also of aggregates already loaded (a cancelled
order's allocation names the items to release). The process service asks every
reaction of a batch, loads all the ids of a round at once, and asks again until
nothing new is named; a reaction that loads something its needs did not name
still gets it, with a load of its own (correct, only slower).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Tracking

from application.persistence import EXPECTED_POSITION
from application.services.audit_metadata import stamp_metadata
from application.services.loading import AggregateLoader

Other = TypeVar("Other", bound=Aggregate)
E = TypeVar("E")
F = TypeVar("F", bound=Callable[..., None])


class LoadedSoFar(Protocol):
    """What a needs function may look at: the batch's aggregates, no loading."""

    def loaded(self, aggregate_id: UUID, kind: type[Other]) -> Other | None: ...


Needs = Callable[[Any, LoadedSoFar], Iterable[UUID]]


def needs(
    ids: Callable[[E, LoadedSoFar], Iterable[UUID]],
) -> Callable[[F], F]:
    """Declares the aggregates a reaction loads: ``ids(event, batch)`` names
    them from the event alone, or also from aggregates already loaded (then it
    is asked again after each round of loading, until it names nothing new).
    It must be pure: it may be called several times per batch, or not at all."""

    def mark(reaction: F) -> F:
        reaction.__needs__ = ids  # type: ignore[attr-defined]
        return reaction

    return mark


class Batch:
    """What reactions to one batch of events change, recorded all at once: with
    the tracking that moves the position from ``expected`` to its own (checked
    in the same transaction), or without tracking for a retried dead letter."""

    def __init__(
        self,
        loader: AggregateLoader,
        tracking: Tracking | None = None,
        expected: int = 0,
    ) -> None:
        self._loader = loader
        self.processing = ProcessingEvent[UUID](tracking)
        if tracking is not None:
            self.processing.saved_kwargs[EXPECTED_POSITION] = expected
        self._loaded: dict[UUID, Aggregate] = {}
        self._absent: set[UUID] = set()

    @property
    def aggregates(self) -> Collection[Aggregate]:
        """Every aggregate the batch loaded or recorded."""
        return self._loaded.values()

    def fetch(self, aggregate_ids: Iterable[UUID]) -> bool:
        """Loads, at once, those of the aggregates the batch knows nothing of
        yet; False if there were none."""
        unknown = {
            aggregate_id
            for aggregate_id in aggregate_ids
            if aggregate_id not in self._loaded and aggregate_id not in self._absent
        }
        if not unknown:
            return False
        found = self._loader.load(unknown)
        self._loaded.update(found)
        self._absent.update(unknown.difference(found))
        return True

    def loaded(self, aggregate_id: UUID, kind: type[Other]) -> Other | None:
        """The aggregate as this batch has it so far (None if it does not
        exist, or has not been loaded)."""
        aggregate = self._loaded.get(aggregate_id)
        return aggregate if isinstance(aggregate, kind) else None

    def load(self, aggregate_id: UUID, kind: type[Other]) -> Other | None:
        """The aggregate as this batch has left it (None if it does not exist):
        two events of one batch reacting on the same aggregate see each other.
        Loaded on the spot if the reaction's needs did not name it."""
        self.fetch((aggregate_id,))
        return self.loaded(aggregate_id, kind)

    def record(self, *aggregates: Aggregate) -> None:
        """Takes the aggregates' new events into the batch, stamped with the
        metadata of the reaction that caused them."""
        for aggregate in aggregates:
            # What ProcessingEvent.collect_events does with an aggregate,
            # without its two isinstance checks of runtime protocols (slow
            # enough to cost a tenth of a batch).
            new_events = aggregate.collect_events()
            stamp_metadata(new_events)
            self.processing.events.extend(new_events)
            self.processing.aggregates[aggregate.id] = aggregate
            self._loaded[aggregate.id] = aggregate
            self._absent.discard(aggregate.id)
