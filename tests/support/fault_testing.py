"""Helpers for the tests of fault policies and dead letters, whichever
subscriber (a process manager, a read model) the fault is injected into."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

from application import Shop
from application.config import FaultPolicy, OnFailure
from domain.errors import DeadLetterStateError


def fast(on_failure: OnFailure, attempts: int = 3) -> FaultPolicy:
    """A policy whose backoff is short enough for tests."""
    return FaultPolicy(
        attempts=attempts, base_delay=0.001, max_delay=0.005, on_failure=on_failure
    )


def retried_at_once(shop: Shop, dead_letter_id: UUID, callers: int = 2) -> list[str]:
    """Has ``callers`` threads retry the dead letter at the same moment; what
    each got, sorted: ``"retried"`` or ``"refused"`` (it was retried already)."""
    start = threading.Barrier(callers)

    def retry() -> str:
        start.wait()
        try:
            shop.dead_letters.retry(dead_letter_id)
        except DeadLetterStateError:
            return "refused"
        return "retried"

    with ThreadPoolExecutor(max_workers=callers) as pool:
        return sorted(pool.map(lambda _: retry(), range(callers)))
