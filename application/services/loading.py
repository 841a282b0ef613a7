"""Loading many aggregates of one service at once, for a batch of reactions.

The library's ``Repository`` rebuilds one aggregate per call: its latest
snapshot, then the events after it, two round trips each. A process manager's
batch needs hundreds. :class:`AggregateLoader` rebuilds a set of aggregates the
same way (the service's mapper, the aggregates' own projector, snapshots
honoured) with one statement for all their snapshots and one for all their
events.

A loader may keep what its subscriber's batches left behind in a bounded cache.
A cached aggregate is never trusted as it is: a command (``pay_order``,
``receive_stock``) may have changed it since, so the events stored after its
cached version are read and applied before it is handed out, in the same
statement as the other aggregates' events.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from typing import Protocol, cast
from uuid import UUID

from eventsourcing.application import Application, LRUCache
from eventsourcing.domain import Aggregate, CanMutateProtocol
from eventsourcing.persistence import StoredEvent

DEFAULT_CACHE_SIZE = 4096
"""Aggregates a process manager keeps between batches: every SKU of a large
shop, and the allocations of the last few thousand orders."""


Event = CanMutateProtocol[Aggregate]


def replay(start: Aggregate | None, events: Iterable[Event]) -> Aggregate | None:
    """Applies events with the aggregate's own projector (their ``mutate``),
    as the library's ``project_aggregate`` does, without its protocol check
    per event (a costly isinstance of a runtime-checkable protocol)."""
    aggregate = start
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class BulkReads(Protocol):
    """What eventshop's recorders add to read many originators at once."""

    def select_events_after(self, versions: Mapping[UUID, int]) -> list[StoredEvent]:
        """The stored events of each originator after the version given for
        it, in order of originator and version."""

    def select_latest_events(
        self, originator_ids: Collection[UUID]
    ) -> list[StoredEvent]:
        """The newest stored event of each originator that has any."""


class AggregateLoader:
    """Rebuilds the current state of many aggregates of one service in one or
    two statements, optionally through a cache of up to ``cache_size``
    aggregates (then it belongs to one thread: the cached objects are handed
    out as they are, for the batch to change)."""

    def __init__(self, service: Application[UUID], cache_size: int = 0) -> None:
        self._mapper = service.mapper
        self._events = cast(BulkReads, service.recorder)
        self._snapshots = (
            None
            if service.snapshots is None
            else cast(BulkReads, service.snapshots.recorder)
        )
        self._cache: LRUCache[UUID, Aggregate] | None = (
            LRUCache(maxsize=cache_size) if cache_size > 0 else None
        )

    def load(self, aggregate_ids: Collection[UUID]) -> dict[UUID, Aggregate]:
        """Those of the aggregates that exist, as they are stored now."""
        try:
            return self._load(aggregate_ids)
        except BaseException:
            # A cached aggregate may have been fast-forwarded halfway.
            self.forget(aggregate_ids)
            raise

    def _load(self, aggregate_ids: Collection[UUID]) -> dict[UUID, Aggregate]:
        starts = {
            aggregate_id: self._cached(aggregate_id) for aggregate_id in aggregate_ids
        }
        uncached = [
            aggregate_id for aggregate_id, start in starts.items() if start is None
        ]
        starts.update(self._from_snapshots(uncached))
        after = {
            aggregate_id: 0 if start is None else start.version
            for aggregate_id, start in starts.items()
        }
        newer: defaultdict[UUID, list[Event]] = defaultdict(list)
        for stored in self._events.select_events_after(after):
            event = cast(Event, self._mapper.to_domain_event(stored))
            newer[event.originator_id].append(event)
        loaded: dict[UUID, Aggregate] = {}
        for aggregate_id, start in starts.items():
            aggregate = replay(start, newer[aggregate_id])
            if aggregate is not None:
                loaded[aggregate_id] = aggregate
        return loaded

    def keep(self, aggregates: Iterable[Aggregate]) -> None:
        """Caches aggregates as a recorded batch left them; one with events
        still pending was changed beyond what was recorded, so it is dropped."""
        if self._cache is None:
            return
        for aggregate in aggregates:
            if aggregate.pending_events:
                self.forget((aggregate.id,))
            else:
                self._cache.put(aggregate.id, aggregate)

    def forget(self, aggregate_ids: Iterable[UUID]) -> None:
        """Drops aggregates a failed batch touched: they may hold changes that
        were never recorded."""
        if self._cache is None:
            return
        for aggregate_id in aggregate_ids:
            with contextlib.suppress(KeyError):
                self._cache.get(aggregate_id, evict=True)

    def is_cached(self, aggregate_id: UUID) -> bool:
        return self._cache is not None and aggregate_id in self._cache.cache

    def _cached(self, aggregate_id: UUID) -> Aggregate | None:
        if self._cache is None:
            return None
        try:
            return self._cache.get(aggregate_id)
        except KeyError:
            return None

    def _from_snapshots(self, aggregate_ids: Collection[UUID]) -> dict[UUID, Aggregate]:
        if self._snapshots is None or not aggregate_ids:
            return {}
        restored: dict[UUID, Aggregate] = {}
        for stored in self._snapshots.select_latest_events(aggregate_ids):
            snapshot = cast(Event, self._mapper.to_domain_event(stored))
            aggregate = replay(None, [snapshot])
            assert aggregate is not None
            restored[snapshot.originator_id] = aggregate
        return restored
