"""Process managers: services that react to other services' events.

A process service (Orders, Inventory) declares its subscriptions (a name, the
service it follows, the event types it reacts to) and one reaction per event
type, marked with :func:`projections.base.handles`. A runner feeds it batches of
those events; every aggregate the reactions change, and the position the batch
brings the subscription to, are recorded in ONE transaction of the service's own
store, and only if the position is still the one the batch started from. So a
redelivered, replayed or concurrently duplicated event never takes effect twice.

Each reaction declares, with :func:`needs`, the aggregates it will load, as a
function of its event (and of what is loaded so far, for what only a loaded
aggregate knows). A batch loads the needs of all its events at once, in rounds
of one or two statements (see ``application.services.loading``), from a cache
of what the subscriber's earlier batches left behind, fast-forwarded first. A
reaction that asks for more still gets it, with a load of its own.

An event the runner gives up on (see ``application.runners``) is parked as a
:class:`~domain.dead_letter.DeadLetter` of the same store, recorded with the
tracking that moves past it; retrying it later records the reaction's effects
and the dead letter's ``Retried`` event in one transaction, so the version of
the dead letter is what keeps a retry from taking effect twice.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Protocol, TypeVar, cast
from uuid import UUID

from eventsourcing.application import ProcessingEvent
from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import ProcessRecorder, RecordConflictError, Tracking
from eventsourcing.utils import get_topic

from application.metadata import acting_as, caused_by, stamp_metadata
from application.persistence import EXPECTED_POSITION, PositionMovedError
from application.services.base import K, ShopService
from application.services.loading import DEFAULT_CACHE_SIZE, AggregateLoader
from domain.dead_letter import DeadLetter, Failure, ParkedEvent
from domain.errors import (
    ConcurrencyConflictError,
    DeadLetterNotFoundError,
    DeadLetterRetryFailedError,
)
from projections.base import handlers_of

A = TypeVar("A", bound=Aggregate)
Other = TypeVar("Other", bound=Aggregate)
E = TypeVar("E")
F = TypeVar("F", bound=Callable[..., None])

# A batch that collides with a command on the same aggregate is simply redone
# on the fresh state; only a persistent collision is worth a runner's retry.
MAX_BATCH_ATTEMPTS = 10

# Rounds of loading before a batch's reactions run: a round per step of
# "this aggregate names those" (an order's allocation names its items), and
# one to see that nothing new is asked. Beyond that, reactions load the rest.
MAX_PREFETCH_ROUNDS = 4


class TrackingProcessRecorder(Protocol):
    """What eventshop's process recorders add to eventsourcing's."""

    def ensure_tracking(self, leader: str) -> None: ...

    def max_tracking_id(self, application_name: str) -> int | None: ...


@dataclass(frozen=True)
class Subscription:
    """One stream a process service reacts to."""

    name: str
    follows: str
    event_types: tuple[type, ...]


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
        service: ShopService[Any, Any],
        loader: AggregateLoader,
        tracking: Tracking | None = None,
        expected: int = 0,
    ) -> None:
        self._service = service
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


Reaction = Callable[[Any, Any, Batch], None]


class ProcessService(ShopService[A, K]):
    """A service whose store also records how far it has reacted to others."""

    subscriptions: ClassVar[tuple[Subscription, ...]] = ()
    _reactions: ClassVar[dict[type, Reaction]] = {}
    _needs: ClassVar[dict[type, Needs]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._reactions = handlers_of(cls)
        # Kept apart from the reactions, so a reaction replaced at run time
        # (a test's faulty stand-in) still has its original's needs loaded.
        cls._needs = {}
        for event_type in cls._reactions:
            ids: Needs | None = getattr(cls._reactions[event_type], "__needs__", None)
            if ids is not None:
                cls._needs[event_type] = ids

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    @property
    def process_recorder(self) -> TrackingProcessRecorder:
        return cast(TrackingProcessRecorder, self.recorder)

    def react(self, event: object, batch: Batch) -> None:
        reaction = self._reactions.get(type(event))
        if reaction is not None:
            reaction(self, event, batch)

    def prefetch(self, events: Sequence[object], batch: Batch) -> None:
        """Loads what the reactions to ``events`` need, every id of a round at
        once, for as many rounds as loaded aggregates name more (bounded)."""
        for _ in range(MAX_PREFETCH_ROUNDS):
            wanted = [
                aggregate_id
                for event in events
                if (ids := self._needs.get(type(event))) is not None
                for aggregate_id in ids(event, batch)
            ]
            if not batch.fetch(wanted):
                return

    def record_batch(self, batch: Batch) -> None:
        self._record(batch.processing)
        self._snapshot_crossings(batch.processing)

    def _snapshot_crossings(self, processing: ProcessingEvent[UUID]) -> None:
        """Snapshots every aggregate whose new events crossed a multiple of
        its snapshotting interval, at the version the batch left it, from its
        state in memory, all in one write. (The library snapshots at each
        multiple, rebuilding the aggregate at it from the store: a batch
        reserving 30 units of one item would mostly pay for that.)"""
        if self.snapshots is None:
            return
        first_new: dict[UUID, int] = {}
        for event in processing.events:
            first_new.setdefault(event.originator_id, event.originator_version)
        snapshots: list[Snapshot] = []
        for aggregate_id, first in first_new.items():
            aggregate = processing.aggregates.get(aggregate_id)
            if not isinstance(aggregate, Aggregate):
                continue
            interval = self.snapshotting_intervals.get(type(aggregate))
            if not interval:
                continue
            crossed = aggregate.version // interval * interval
            if crossed < first:
                continue
            if aggregate.pending_events:
                # Changed beyond what was recorded: only the store knows.
                self.take_snapshot(aggregate_id, crossed)
            else:
                snapshot_class = getattr(type(aggregate), "Snapshot", Snapshot)
                snapshots.append(snapshot_class.take(aggregate))
        if snapshots:
            self.snapshots.put(snapshots)


class ProcessSubscriber:
    """Hosts one subscription of a process service in a runner."""

    def __init__(
        self,
        service: ProcessService[Any, Any],
        subscription: Subscription,
        report: Callable[[str, str, str | None], None],
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.service = service
        self.subscription = subscription
        self._report = report
        self._has_tracking_row = False
        # The cache is the runner thread's alone; dead letters, handled from
        # other threads, load without one.
        self.loader = AggregateLoader(service, cache_size)
        self._uncached = AggregateLoader(service)

    @property
    def name(self) -> str:
        return self.subscription.name

    @property
    def follows(self) -> str:
        return self.subscription.follows

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(get_topic(kind) for kind in self.subscription.event_types)

    @property
    def actor(self) -> str:
        return f"process:{self.name}"

    def position(self) -> int | None:
        recorder = self.service.process_recorder
        if not self._has_tracking_row:
            recorder.ensure_tracking(self.follows)
            self._has_tracking_row = True
        return recorder.max_tracking_id(self.follows)

    def process(
        self,
        events: Sequence[object],
        *,
        expected_position: int | None,
        new_position: int,
    ) -> bool:
        tracking = Tracking(self.follows, new_position)
        for attempt in range(1, MAX_BATCH_ATTEMPTS + 1):
            batch = Batch(self.service, self.loader, tracking, expected_position or 0)
            try:
                with self._caching(batch):
                    self.service.prefetch(events, batch)
                    for event in events:
                        with caused_by(event, self.actor):  # type: ignore[arg-type]
                            self.service.react(event, batch)
                    self.service.record_batch(batch)
            except PositionMovedError:
                return False
            except RecordConflictError:
                # A command changed one of the batch's aggregates meanwhile.
                if attempt == MAX_BATCH_ATTEMPTS:
                    raise
                continue
            return True
        return False

    @contextmanager
    def _caching(self, batch: Batch) -> Iterator[None]:
        """Keeps what the batch leaves behind once it is recorded; drops all it
        touched if anything fails, its changes being unrecorded."""
        try:
            yield
        except BaseException:
            self.loader.forget(aggregate.id for aggregate in batch.aggregates)
            raise
        self.loader.keep(batch.aggregates)

    def park(
        self, parked: ParkedEvent, failure: Failure, *, expected_position: int | None
    ) -> bool:
        batch = Batch(
            self.service,
            self._uncached,
            Tracking(self.follows, parked.position),
            expected_position or 0,
        )
        with acting_as(self.actor):
            batch.record(DeadLetter.park(self.name, self.follows, parked, failure))
        try:
            self.service.record_batch(batch)
        except PositionMovedError:
            return False
        return True

    def retry(self, dead_letter_id: UUID, parked_event: Callable[[], object]) -> None:
        """Reacts to the event of a parked dead letter and marks it retried, in
        one transaction. If the reaction fails, nothing of it is written, the
        dead letter keeps the new error and DeadLetterRetryFailedError says so."""
        for _ in range(MAX_BATCH_ATTEMPTS):
            batch = Batch(self.service, self._uncached)
            letter = self._dead_letter(batch, dead_letter_id)
            letter.mark_retried()
            try:
                event = parked_event()
                self.service.prefetch([event], batch)
                with caused_by(event, self.actor):  # type: ignore[arg-type]
                    self.service.react(event, batch)
                    batch.record(letter)
            except Exception as error:
                failure = Failure.of(error)
                self._change_dead_letter(
                    dead_letter_id, partial(DeadLetter.fail_retry, failure=failure)
                )
                raise DeadLetterRetryFailedError(
                    dead_letter_id, failure.error
                ) from error
            try:
                self.service.record_batch(batch)
            except RecordConflictError:
                # A command, or another retry, changed something meanwhile.
                continue
            return
        raise ConcurrencyConflictError(dead_letter_id, MAX_BATCH_ATTEMPTS)

    def discard(self, dead_letter_id: UUID, reason: str) -> None:
        self._change_dead_letter(dead_letter_id, lambda letter: letter.discard(reason))

    def _change_dead_letter(
        self, dead_letter_id: UUID, change: Callable[[DeadLetter], None]
    ) -> None:
        for _ in range(MAX_BATCH_ATTEMPTS):
            batch = Batch(self.service, self._uncached)
            letter = self._dead_letter(batch, dead_letter_id)
            change(letter)
            batch.record(letter)
            try:
                self.service.record_batch(batch)
            except RecordConflictError:
                continue
            return
        raise ConcurrencyConflictError(dead_letter_id, MAX_BATCH_ATTEMPTS)

    @staticmethod
    def _dead_letter(batch: Batch, dead_letter_id: UUID) -> DeadLetter:
        letter = batch.load(dead_letter_id, DeadLetter)
        if letter is None:
            raise DeadLetterNotFoundError(dead_letter_id)
        return letter

    def report(self, state: str, error: str | None = None) -> None:
        self._report(self.name, state, error)
