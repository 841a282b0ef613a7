"""A projection as a subscriber: what a runner needs to host it."""

from __future__ import annotations

import time
from collections.abc import Sequence

from domain.dead_letter import Failure, ParkedEvent
from projections.read_model import ReadModel
from projections.store import ViewStore, subscriber_name

# How long an outdated subscriber waits before its runner looks again at which
# generation is active; it keeps a runner fed with events from spinning.
OUTDATED_RETRY_SECONDS = 0.5


class ReadModelSubscriber:
    """Feeds the active generation of one projection; when readers are switched
    to another generation, ``process`` refuses and the runner resyncs onto it.

    While the active generation was built by another ``projection.version``
    than this code's (during a rollout), the subscriber is *outdated*: it
    writes nothing, reports "outdated" and has its runner retry now and then,
    until readers are switched to a generation of its own version."""

    def __init__(
        self,
        projection: type[ReadModel],
        store: ViewStore,
        *,
        outdated_retry_seconds: float = OUTDATED_RETRY_SECONDS,
    ) -> None:
        self.projection = projection
        self.store = store
        self.outdated_retry_seconds = outdated_retry_seconds
        self._generation: int | None = None
        self._outdated = False

    @property
    def name(self) -> str:
        return self.projection.name

    @property
    def follows(self) -> str:
        return self.projection.follows

    @property
    def topics(self) -> frozenset[str]:
        return self.projection.topics()

    @property
    def is_outdated(self) -> bool:
        """Whether the generation readers see was built by another version."""
        return self._outdated

    def position(self) -> int | None:
        active = self.store.registry.active(self.projection)
        self._generation = active.generation
        outdated = active.version != self.projection.version
        if outdated and not self._outdated:
            self._outdated = True
            self.report("outdated")
        self._outdated = outdated
        return self.store.positions.position(
            subscriber_name(self.projection, active.generation), self.follows
        )

    def process(
        self,
        events: Sequence[object],
        *,
        expected_position: int | None,
        new_position: int,
    ) -> bool:
        if self._generation is None:
            return False
        if self._outdated:
            if (
                self.store.registry.active(self.projection).version
                != self.projection.version
            ):
                time.sleep(self.outdated_retry_seconds)
            return False
        return self.store.positions.apply(
            self.projection,
            self._generation,
            events,
            expected_position=expected_position,
            new_position=new_position,
            only_if_active=True,
        )

    def park(
        self, parked: ParkedEvent, failure: Failure, *, expected_position: int | None
    ) -> bool:
        if self._generation is None or self._outdated:
            return False
        return self.store.dead_letters.park(
            self.projection,
            self._generation,
            parked,
            failure,
            expected_position=expected_position,
            only_if_active=True,
        )

    def report(self, state: str, error: str | None = None) -> None:
        if state == "running" and self._outdated:
            state = "outdated"
        self.store.reports.record(self.name, state, error)
