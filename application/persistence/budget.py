"""The time a command may take, shared by every database call it makes.

A command (``Shop.checkout``, say) loads, decides and saves, and each of those
may have to wait for a database that is restarting. The command sets one
budget; each call inside it waits and retries only for what is left of it, so
the command as a whole either returns or fails within its time.

The library's recorders retry a failed call by a decorator of their own (ten
attempts of a whole connect timeout each): inside a command the engines call
the undecorated method instead, retried by :func:`within_budget`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from eventsourcing.persistence import InterfaceError, OperationalError

from application.persistence import DatabaseUnreachableError

T = TypeVar("T")

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


def undecorated(method: Callable[..., T]) -> Callable[..., T]:
    """A bound method of the library's without its retry decorator."""
    wrapped = getattr(method, "__wrapped__", None)
    if wrapped is None:
        return method
    return functools.partial(wrapped, method.__self__)  # type: ignore[attr-defined]


def within_budget(read: Callable[[], T]) -> T:
    """``read()``, retried while the database is away, for as long as the
    current budget lasts; a refusal is not retried."""
    failures = 0
    while True:
        try:
            return read()
        except (OperationalError, InterfaceError) as error:
            if isinstance(error, DatabaseUnreachableError) and error.refused:
                raise
            failures += 1
            left = remaining(0.0)
            if left <= 0:
                raise
            time.sleep(min(left, backoff(failures)))
