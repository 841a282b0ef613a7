"""``eventshop worker`` as a real process: killed mid-batch and restarted, and a
standby taking over when the active instance dies (an advisory lock on
PostgreSQL, a lock file on SQLite)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from application.config import Settings
from application.shop import Shop
from domain.inventory import InventoryItem
from projections.read_models.stock import StockLevels
from projections.store import subscriber_name, tracking_table
from tests.projections.runner_testing import eventually, start_worker, stock_rows

SKUS = [f"BULK-{number}" for number in range(8)]
EVENTS_PER_SKU = 500


@pytest.fixture
def shop(settings: Settings) -> Iterator[Shop]:
    with Shop(settings=settings, subscribers="workers") as shop:
        yield shop


def write_bulk_history(shop: Shop, skus: list[str]) -> None:
    """Thousands of events in a few transactions: each SKU's receipts saved at once."""
    for sku in skus:
        item = InventoryItem.register(sku, f"bulk {sku}", "2.50")
        for _ in range(EVENTS_PER_SKU):
            item.receive(1)
        shop.inventory.save(item)


@contextlib.contextmanager
def tracking_row_locked(shop: Shop, subscriber: str) -> Iterator[None]:
    """Holds a write lock on ``subscriber``'s tracking row (the whole views
    file on SQLite), so its next batch blocks before it commits."""
    with shop.views.engine.connect() as connection, connection.begin() as held:
        connection.execute(
            update(tracking_table)
            .where(tracking_table.c.subscriber == subscriber)
            .values(position=tracking_table.c.position)
        )
        yield
        held.rollback()


def stock_position(shop: Shop) -> int:
    generation = shop.views.registry.active_generation(StockLevels)
    return (
        shop.views.positions.position(
            subscriber_name(StockLevels, generation), "Inventory"
        )
        or 0
    )


def stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def test_a_worker_killed_mid_batch_resumes_without_applying_any_event_twice(
    shop: Shop, settings: Settings
) -> None:
    # given a worker that has caught up with the first SKU's history
    first, rest = SKUS[:1], SKUS[1:]
    write_bulk_history(shop, first)
    caught_up = shop.inventory.log_head()
    worker = start_worker(settings, "stock", "--batch-size", "50")
    try:
        eventually(
            lambda: stock_position(shop) == caught_up, 60, "the worker's catch-up"
        )
        subscriber = subscriber_name(
            StockLevels, shop.views.registry.active_generation(StockLevels)
        )

        # when the rest arrives while its next batch cannot commit (a lock,
        # so the kill lands mid-batch however fast the machine), and the
        # worker is killed (SIGKILL) there
        with tracking_row_locked(shop, subscriber):
            write_bulk_history(shop, rest)
            time.sleep(0.5)  # time to read a batch and block on its commit
            worker.kill()
            worker.wait()
    finally:
        stop(worker)
    head = shop.inventory.log_head()
    assert head == len(SKUS) * (EVENTS_PER_SKU + 1)
    assert stock_position(shop) == caught_up

    # and a new worker is started
    worker = start_worker(settings, "stock")
    try:
        eventually(lambda: stock_position(shop) == head, 60, "the restarted worker")
    finally:
        stop(worker)

    # then every SKU's view row equals the aggregate: nothing doubled or skipped
    rows = {row.sku: row for row in stock_rows(shop.views)}
    for sku in SKUS:
        stock = shop.get_stock(sku)
        assert (rows[sku].on_hand, rows[sku].reserved) == (stock.on_hand, 0)
        assert stock.on_hand == EVENTS_PER_SKU


def test_a_standby_worker_takes_over_when_the_active_one_dies(
    shop: Shop, settings: Settings
) -> None:
    # given an active worker and a second instance of it
    shop.register_product("TAKE-1", "takeover", "1.00")
    first = start_worker(settings, "stock")
    second: subprocess.Popen[bytes] | None = None
    try:
        eventually(
            lambda: _states(shop).get(first.pid) == "running", 30, "the first worker"
        )
        second = start_worker(settings, "stock")
        eventually(
            lambda: _states(shop).get(second.pid) == "standby" if second else False,
            30,
            "the second worker to stand by",
        )
        shop.receive_stock("TAKE-1", 3)
        shop.wait_until_processed(timeout=30, only=["stock"])

        # when the active one is killed
        first.kill()
        first.wait()
        shop.receive_stock("TAKE-1", 4)

        # then the standby takes over and handles what came after
        shop.wait_until_processed(timeout=30, only=["stock"])
        assert _states(shop).get(second.pid) == "running"
        rows = {row.sku: row for row in stock_rows(shop.views)}
        assert rows["TAKE-1"].on_hand == 7
    finally:
        stop(first)
        if second is not None:
            stop(second)


def _states(shop: Shop) -> dict[int, str]:
    """State last reported by each live process running the stock subscriber."""
    return {
        report.pid: report.state
        for report in shop.views.reports.all().get("stock", [])
        if _alive(report.pid)
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
