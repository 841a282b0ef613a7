"""What a runner (``application.subscribers.runner``) runs: a subscriber."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from domain.dead_letter import Failure, ParkedEvent


class Subscriber(Protocol):
    """Something that handles a service's events exactly once."""

    @property
    def name(self) -> str: ...

    @property
    def follows(self) -> str:
        """Name of the service whose log it reads."""

    @property
    def topics(self) -> frozenset[str]:
        """Topics of the events it handles; it sees no others."""

    def position(self) -> int | None:
        """Last notification id handled (re-read from storage)."""

    def process(
        self,
        events: Sequence[object],
        *,
        expected_position: int | None,
        new_position: int,
    ) -> bool:
        """Handles ``events`` and moves the position, atomically; False if the
        stored position was not ``expected_position`` (nothing written)."""

    def park(
        self, parked: ParkedEvent, failure: Failure, *, expected_position: int | None
    ) -> bool:
        """Records a dead letter of the event at ``parked.position`` and moves
        the position there, atomically; False (nothing written) as ``process``."""

    def report(self, state: str, error: str | None = None) -> None:
        """Records the runner's state and heartbeat for ``eventshop status``."""
