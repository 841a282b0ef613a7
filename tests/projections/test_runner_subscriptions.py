"""Subscriptions and hosting under concurrency: tailing a log while many processes
write to it, and many processes starting at once against an empty database."""

from __future__ import annotations

import multiprocessing
import time
from uuid import UUID

import pytest

from application.config import Settings
from application.services import Inventory
from tests.projections.log_writers import open_shop, write_stock_events

WRITERS = 8
EVENTS_PER_WRITER = 40


def test_a_tailing_reader_sees_every_event_exactly_once_while_8_processes_write(
    settings: Settings,
) -> None:
    # given a reader subscribed to the Inventory log before anything is written
    reader = Inventory(settings)
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(WRITERS)
    writers = [
        spawn.Process(
            target=write_stock_events,
            args=(
                settings.database_url(),
                f"SKU-{number}",
                EVENTS_PER_WRITER,
                start,
            ),
        )
        for number in range(WRITERS)
    ]
    expected = WRITERS * (EVENTS_PER_WRITER + 1)
    seen: list[tuple[int, UUID, int]] = []
    try:
        with reader.recorder.subscribe(gt=None) as subscription:
            # when 8 processes write concurrently
            for writer in writers:
                writer.start()
            deadline = time.monotonic() + 60
            while len(seen) < expected and time.monotonic() < deadline:
                batch = subscription.next_batch(timeout=0.5)  # type: ignore[attr-defined]
                seen.extend(
                    (n.id, UUID(str(n.originator_id)), n.originator_version)
                    for n in batch
                )
            for writer in writers:
                writer.join(timeout=60)
            # and a little more time shows nothing arrives twice
            seen.extend(
                (n.id, UUID(str(n.originator_id)), n.originator_version)
                for n in subscription.next_batch(timeout=0.3)  # type: ignore[attr-defined]
            )
        stored = reader.recorder.select_notifications(start=None, limit=10 * expected)
    finally:
        reader.close()

    # then every writer finished and the reader saw every stored event once, in order
    assert [writer.exitcode for writer in writers] == [0] * WRITERS
    positions = [position for position, _, _ in seen]
    assert positions == sorted(set(positions))
    assert len(seen) == expected
    assert {
        (n.id, UUID(str(n.originator_id)), n.originator_version) for n in stored
    } == set(seen)


@pytest.mark.postgres
def test_many_processes_can_open_shops_at_once_on_an_empty_postgres_schema(
    postgres_schema: str,
) -> None:
    # given an empty schema and six processes released at the same moment
    from tests.conftest import postgres_url

    url = postgres_url(postgres_schema)
    spawn = multiprocessing.get_context("spawn")
    processes = 6
    with spawn.Manager() as manager, spawn.Pool(processes) as pool:
        start = manager.Barrier(processes)
        # when each opens a shop (creating tables, types, functions, triggers)
        results = [pool.apply_async(open_shop, (url, start)) for _ in range(processes)]
        cart_ids = [result.get(timeout=120) for result in results]
    # then none of them failed, and each could write
    assert len(set(cart_ids)) == processes
