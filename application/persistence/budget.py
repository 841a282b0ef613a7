"""The time a command may take, shared by every database call it makes.

A command (``Shop.checkout``, say) loads, decides and saves, and each of those
may have to wait for a database that is restarting. The command sets one
budget; each call inside it waits and retries only for what is left of it, so
the command as a whole either returns or fails within its time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("eventshop_deadline", default=None)


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Calls inside the block share ``seconds`` from now; inside an outer
    budget, the outer one holds (a block of calls is one command)."""
    if _deadline.get() is not None:
        yield
        return
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining(default: float) -> float:
    """Seconds left of the current budget, or ``default`` outside any."""
    deadline = _deadline.get()
    if deadline is None:
        return default
    return max(0.0, deadline - time.monotonic())


def has_budget() -> bool:
    return _deadline.get() is not None


def backoff(failures: int) -> float:
    """Seconds to wait after the ``failures``-th failure in a row to reach the
    database: short at first (a restart takes about a second), at most one."""
    return min(0.05 * 2.0**failures, 1.0)
