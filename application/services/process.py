"""Process managers: services that react to other services' events.

A process service (Orders, Inventory) declares one reaction per event type,
marked with :func:`projections.read_model.handles`; which of its process
managers follows which service, and so which reactions each one feeds, is the
topology's to say (``application.topology``). A runner feeds it batches of
those events; every aggregate the reactions change, and the position the batch
brings the subscription to, are recorded in ONE transaction of the service's own
store, and only if the position is still the one the batch started from. So a
redelivered, replayed or concurrently duplicated event never takes effect twice.

Each reaction declares, with :func:`~application.services.batch.needs`, the
aggregates it will load. Before the reactions run, a batch loads the needs of
all its events at once, in rounds of one or two statements (see
``application.services.loading``), through a cache of what the subscriber's
earlier batches left behind, brought up to date first.

An event the runner gives up on (see ``application.subscribers.runner``) is parked as a
:class:`~domain.dead_letter.DeadLetter` of the same store, recorded with the
tracking that moves past it; retrying it later records the reaction's effects
and the dead letter's ``Retried`` event in one transaction, so the version of
the dead letter is what keeps a retry from taking effect twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Protocol, TypeVar, cast
from uuid import UUID

from eventsourcing.application import ProcessingEvent
from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import ProcessRecorder, RecordConflictError, Tracking
from eventsourcing.utils import get_topic

from application.persistence import PositionMovedError
from application.services.audit_metadata import acting_as, caused_by
from application.services.base import K, ShopService
from application.services.batch import Batch, Needs
from application.services.loading import DEFAULT_CACHE_SIZE, AggregateLoader
from domain.dead_letter import DeadLetter, Failure, ParkedEvent
from domain.errors import (
    ConcurrencyConflictError,
    DeadLetterNotFoundError,
    DeadLetterRetryFailedError,
)
from projections.read_model import handlers_of

A = TypeVar("A", bound=Aggregate)

# A batch that collides with a command on the same aggregate is simply redone
# on the fresh state; only a persistent collision is worth a runner's retry.
MAX_BATCH_ATTEMPTS = 10

# Rounds of loading before a batch's reactions run: one per step of "this
# aggregate names those" (an order's allocation names its items), and one to
# see that nothing new is asked. Reactions load whatever is left themselves.
MAX_PREFETCH_ROUNDS = 4


class TrackingProcessRecorder(Protocol):
    """What eventshop's process recorders add to eventsourcing's."""

    def ensure_tracking(self, leader: str) -> None: ...

    def max_tracking_id(self, application_name: str) -> int | None: ...


@dataclass(frozen=True)
class Subscription:
    """One stream a process service reacts to: what ``application.topology``
    derives for one of its process managers."""

    name: str
    follows: str
    event_types: tuple[type, ...]

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(get_topic(kind) for kind in self.event_types)


Reaction = Callable[[Any, Any, Batch], None]


class ProcessService(ShopService[A, K]):
    """A service whose store also records how far it has reacted to others."""

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

    @classmethod
    def event_types(cls) -> tuple[type, ...]:
        """The event types its reactions handle, in order of declaration."""
        return tuple(cls._reactions)

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
        multiple, rebuilding the aggregate at it from the store: a batch of
        hundreds of reservations of a few items would mostly pay for that.)"""
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
        return self.subscription.topics

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
            batch = Batch(self.loader, tracking, expected_position or 0)
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

        def react_and_mark_retried(batch: Batch, letter: DeadLetter) -> None:
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

        self._record_with_dead_letter(dead_letter_id, react_and_mark_retried)

    def discard(self, dead_letter_id: UUID, reason: str) -> None:
        self._change_dead_letter(dead_letter_id, lambda letter: letter.discard(reason))

    def _change_dead_letter(
        self, dead_letter_id: UUID, change: Callable[[DeadLetter], None]
    ) -> None:
        def change_and_record(batch: Batch, letter: DeadLetter) -> None:
            change(letter)
            batch.record(letter)

        self._record_with_dead_letter(dead_letter_id, change_and_record)

    def _record_with_dead_letter(
        self, dead_letter_id: UUID, fill: Callable[[Batch, DeadLetter], None]
    ) -> None:
        """Loads the dead letter into a new batch, lets ``fill`` change it and
        add to the batch, and records the batch; all again from the start when a
        command, or another retry, wrote something of it meanwhile."""
        for _ in range(MAX_BATCH_ATTEMPTS):
            batch = Batch(self._uncached)
            fill(batch, self._dead_letter(batch, dead_letter_id))
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
