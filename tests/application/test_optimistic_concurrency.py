"""Two writers, one aggregate: the store refuses the stale save, the service runs
the command again on the fresh state, and no update is lost."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Recording

from application import Settings
from application.services import Inventory
from application.services.base import MAX_ATTEMPTS
from domain.errors import ConcurrencyConflictError, InsufficientStockError
from domain.inventory import InventoryItem
from domain.values import inventory_item_id
from tests.application.concurrent_workers import (
    CountingInventory,
    WorkerReport,
    WorkerTask,
    reserve_many,
)
from tests.application.shop_testing import TEA, TEA_NAME, TEA_PRICE, item_state
from tests.conftest import postgres_url
from tests.domain.domain_testing import replay


@pytest.fixture
def inventories(settings: Settings) -> Iterator[tuple[Inventory, Inventory]]:
    """Two instances of the service over one store, as two processes would have."""
    first, second = Inventory(settings), Inventory(settings)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


class RivalWritesBeforeSave:
    """Stands in for ``Application.save`` of one instance: before the first
    ``times`` saves, a rival instance changes the same aggregate, so that each of
    those saves is stale. Counts the saves tried."""

    def __init__(self, inventory: Inventory, rival_command: Any, times: int) -> None:
        self.save = inventory.save
        self.rival_command = rival_command
        self.times = times
        self.tries = 0

    def __call__(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        self.tries += 1
        if self.tries <= self.times:
            self.rival_command()
        return self.save(*objs, **kwargs)


def test_a_stale_save_is_retried_and_both_commands_take_effect(
    inventories: tuple[Inventory, Inventory], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = inventories
    first.register_product(TEA, TEA_NAME, TEA_PRICE)
    first.receive_stock(TEA, 10)
    interleaved = RivalWritesBeforeSave(
        first, lambda: second.receive_stock(TEA, 5), times=1
    )
    monkeypatch.setattr(first, "save", interleaved)

    first.receive_stock(TEA, 1)

    assert interleaved.tries == 2
    stock = second.get_stock(TEA)
    assert (stock.on_hand, stock.version) == (16, 4)


def test_the_retried_command_checks_its_rules_against_the_fresh_state(
    inventories: tuple[Inventory, Inventory], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = inventories
    first.register_product(TEA, TEA_NAME, TEA_PRICE)
    first.receive_stock(TEA, 10)
    rival_order, our_order = uuid4(), uuid4()
    interleaved = RivalWritesBeforeSave(
        first, lambda: second.reserve(TEA, rival_order, 5), times=1
    )
    monkeypatch.setattr(first, "save", interleaved)

    with pytest.raises(InsufficientStockError) as refused:
        first.reserve(TEA, our_order, 8)

    assert (refused.value.requested, refused.value.available) == (8, 5)
    assert interleaved.tries == 1  # the retry refused before saving anything
    item: InventoryItem = second.repository.get(inventory_item_id(TEA))
    assert dict(item.reservations) == {rival_order: 5}


def test_a_command_that_keeps_losing_gives_up_with_a_typed_error(
    inventories: tuple[Inventory, Inventory], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = inventories
    first.register_product(TEA, TEA_NAME, TEA_PRICE)
    interleaved = RivalWritesBeforeSave(
        first, lambda: second.receive_stock(TEA, 1), times=MAX_ATTEMPTS
    )
    monkeypatch.setattr(first, "save", interleaved)

    with pytest.raises(ConcurrencyConflictError) as refused:
        first.receive_stock(TEA, 100)

    assert refused.value.aggregate_id == inventory_item_id(TEA)
    assert refused.value.attempts == MAX_ATTEMPTS == interleaved.tries
    assert second.get_stock(TEA).on_hand == MAX_ATTEMPTS  # only the rival's units


def test_threads_racing_on_one_item_lose_no_update(settings: Settings) -> None:
    threads_count, commands_each = 4, 25
    services = [CountingInventory(settings) for _ in range(threads_count)]
    services[0].register_product(TEA, TEA_NAME, TEA_PRICE)
    start = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def receive_many(inventory: Inventory) -> None:
        try:
            start.wait(timeout=30)
            for _ in range(commands_each):
                inventory.receive_stock(TEA, 1)
        except BaseException as error:
            errors.append(error)
            raise

    threads = [
        threading.Thread(target=receive_many, args=(service,)) for service in services
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        lost_races = sum(service.lost_races for service in services)
        stock = services[0].get_stock(TEA)
    finally:
        for service in services:
            service.close()

    assert errors == []
    assert stock.on_hand == threads_count * commands_each
    assert stock.version == 1 + threads_count * commands_each
    print(f"\n{settings.engine}: {lost_races} stale saves retried")


@pytest.mark.postgres
@pytest.mark.slow
def test_writer_processes_never_reserve_more_than_was_received(
    postgres_schema: str,
) -> None:
    processes_count, attempts_each, received = 8, 30, 100
    url = postgres_url(postgres_schema)
    inventory = Inventory(Settings.from_url(url))
    item_id = inventory_item_id(TEA)
    try:
        inventory.register_product(TEA, TEA_NAME, TEA_PRICE)
        for _ in range(received // 5):
            inventory.receive_stock(TEA, 5)

        reports = run_writer_processes(url, processes_count, attempts_each)

        attempts = [attempt for report in reports for attempt in report.attempts]
        outcomes = Counter(attempt.outcome for attempt in attempts)
        reserved = {a.order_id: a.quantity for a in attempts if a.outcome == "reserved"}
        item: InventoryItem = inventory.repository.get(item_id)
        replayed = replay(InventoryItem, inventory.events.get(item_id))
        assert inventory.snapshots is not None
        snapshot_versions = [
            s.originator_version for s in inventory.snapshots.get(item_id)
        ]
        # The snapshot a writer took at version 50 while the others raced on.
        at_50: InventoryItem = inventory.repository.get(item_id, version=50)
        replayed_to_50 = replay(InventoryItem, inventory.events.get(item_id, lte=50))
        inventory.take_snapshot(item_id)
        from_new_snapshot: InventoryItem = inventory.repository.get(item_id)
        reserved_events = [
            e
            for e in inventory.events.get(item_id)
            if isinstance(e, InventoryItem.StockReserved)
        ]
    finally:
        inventory.close()

    print(
        f"\n{len(attempts)} reservations tried by {processes_count} processes: "
        f"{dict(outcomes)}; {sum(reserved.values())} units reserved of {received}; "
        f"{sum(r.lost_races for r in reports)} stale saves retried; "
        f"snapshots at {snapshot_versions}"
    )
    assert len(attempts) == processes_count * attempts_each
    assert set(outcomes) <= {
        "reserved",
        InsufficientStockError.__name__,
        ConcurrencyConflictError.__name__,
    }
    assert item.on_hand == received
    assert item.reserved == sum(reserved.values()) <= received
    assert dict(item.reservations) == reserved
    assert sorted(str(e.order_id) for e in reserved_events) == sorted(
        str(order_id) for order_id in reserved
    )
    assert item.version == 1 + received // 5 + len(reserved)
    assert item_state(replayed) == item_state(item) == item_state(from_new_snapshot)
    assert 50 in snapshot_versions
    assert item_state(at_50) == item_state(replayed_to_50)


def run_writer_processes(
    url: str, processes_count: int, attempts_each: int
) -> list[WorkerReport]:
    """Starts the writers together in fresh ("spawn") processes and collects
    their reports."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes_count)
    reports: multiprocessing.Queue[WorkerReport] = context.Queue()
    processes = [
        context.Process(
            target=reserve_many,
            args=(WorkerTask(url, TEA, worker, attempts_each), start, reports),
        )
        for worker in range(processes_count)
    ]
    for process in processes:
        process.start()
    try:
        collected = [reports.get(timeout=60) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    crashes = [report.crash for report in collected if report.crash]
    assert crashes == []
    assert all(process.exitcode == 0 for process in processes)
    return sorted(collected, key=lambda report: report.worker)
