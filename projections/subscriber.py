"""A projection as a subscriber: what a runner needs to host it."""

from __future__ import annotations

from collections.abc import Sequence

from projections.base import Projection
from projections.store import ViewStore, subscriber_name


class ProjectionSubscriber:
    """Feeds the active generation of one projection; when readers are switched
    to another generation, ``process`` refuses and the runner resyncs onto it."""

    def __init__(self, projection: type[Projection], store: ViewStore) -> None:
        self.projection = projection
        self.store = store
        self._generation: int | None = None

    @property
    def name(self) -> str:
        return self.projection.name

    @property
    def follows(self) -> str:
        return self.projection.follows

    @property
    def topics(self) -> frozenset[str]:
        return self.projection.topics()

    def position(self) -> int | None:
        self._generation = self.store.active_generation(self.projection)
        return self.store.position(
            subscriber_name(self.projection, self._generation), self.follows
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
        return self.store.apply(
            self.projection,
            self._generation,
            events,
            expected_position=expected_position,
            new_position=new_position,
            only_if_active=True,
        )

    def report(self, state: str, error: str | None = None) -> None:
        self.store.report(self.name, state, error)
