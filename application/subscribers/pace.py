"""How often a follower of a busy log takes a batch: the pacing the runners
and the chain keepers share (see :class:`~application.config.Batching`)."""

from __future__ import annotations

import threading
import time

from application.config import Batching


class Pace:
    """How often a follower of a busy log takes a batch (see
    :class:`~application.config.Batching`). A follower of a quiet log takes
    each event at once."""

    def __init__(self, batching: Batching, stopping: threading.Event) -> None:
        self.batching = batching
        self._stopping = stopping
        self._last_at = -1e9
        self._last_was_full = True
        self._interval = batching.interval_seconds

    def wait_for_turn(self) -> bool:
        """Waits until the next batch may start; True if stopped meanwhile."""
        if self._last_was_full:
            return self._stopping.is_set()
        due = self._last_at + self._interval
        return self._stopping.wait(max(due - time.monotonic(), 0))

    def took(self, events: int) -> None:
        """A batch of ``events`` is starting."""
        self._last_at = time.monotonic()
        self._last_was_full = events >= self.batching.max_events

    def finished(self) -> None:
        """The batch that started last is done."""
        took = time.monotonic() - self._last_at
        self._interval = self.batching.interval_after(took)
