"""A read model whose handler raises: retried with backoff, then parked as a dead
letter (or halted, with the ``stop`` policy), and retried or discarded later;
on SQLite and PostgreSQL, every event applied exactly once or parked."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from sqlalchemy import event

from application.cli import main
from application.config import FaultPolicy, Settings
from application.shop import Shop
from application.subscribers.fault_handling import SubscriberHaltedError
from application.subscribers.runner import SubscriberRunner
from application.subscribers.status import subscriber_statuses
from domain.dead_letter import DeadLetterStatus
from domain.errors import (
    DeadLetterNotFoundError,
    DeadLetterRetryFailedError,
    DeadLetterStateError,
)
from domain.inventory import InventoryItem
from domain.values import inventory_item_id
from projections.batching.changes import Changes
from projections.read_model_subscriber import ReadModelSubscriber
from projections.read_models.stock import StockLevels
from tests.projections.runner_testing import eventually, stock_rows
from tests.support.fault_testing import fast

SKU = "TEA-SENCHA"
UNLUCKY = 13


@dataclass
class FlakyReceipts:
    """Stands in for the stock read model's StockReceived handler: receipts of
    ``UNLUCKY`` units fail (``failures`` times, or for as long as ``broken``)."""

    handle: Callable[..., None]
    failures: int = 0
    broken: bool = False
    error: str = "unlucky receipt"
    failed: int = 0
    handled: list[int] = field(default_factory=list)

    def __call__(
        self,
        projection: StockLevels,
        changes: Changes,
        received: InventoryItem.StockReceived,
    ) -> None:
        failing = self.broken or self.failed < self.failures
        if received.quantity == UNLUCKY and failing:
            self.failed += 1
            raise RuntimeError(self.error)
        self.handle(projection, changes, received)
        self.handled.append(received.quantity)


@pytest.fixture
def receipts(monkeypatch: pytest.MonkeyPatch) -> FlakyReceipts:
    flaky = FlakyReceipts(StockLevels._handlers[InventoryItem.StockReceived])
    monkeypatch.setitem(StockLevels._handlers, InventoryItem.StockReceived, flaky)
    return flaky


@pytest.fixture
def shop(settings: Settings) -> Iterator[Shop]:
    """A shop whose subscribers do not run; tests run the stock read model."""
    with Shop(settings=settings, subscribers="workers") as shop:
        yield shop


@pytest.fixture
def stock_runner(shop: Shop) -> Iterator[Callable[[FaultPolicy], SubscriberRunner]]:
    """Starts the stock read model's runner with a fault policy."""
    runners: list[SubscriberRunner] = []

    def start(policy: FaultPolicy) -> SubscriberRunner:
        runner = SubscriberRunner(
            ReadModelSubscriber(StockLevels, shop.views), shop.inventory, policy=policy
        )
        runner.start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop()
        runner.join()


def receive(shop: Shop, *quantities: int) -> None:
    """Registers the product (log position 1), then one receipt per quantity
    (positions 2, 3, ...), all before the runner starts: one batch."""
    shop.register_product(SKU, "Sencha", "6.20")
    for quantity in quantities:
        shop.receive_stock(SKU, quantity)


def on_hand(shop: Shop) -> int:
    on_hand: int = stock_rows(shop.views)[0].on_hand
    return on_hand


def caught_up(runner: SubscriberRunner, shop: Shop) -> None:
    assert runner.wait_for(shop.inventory.log_head(), timeout=30), runner.error


def test_a_handler_that_fails_twice_is_retried_and_applies_its_event_once(
    shop: Shop,
    receipts: FlakyReceipts,
    stock_runner: Callable[[FaultPolicy], SubscriberRunner],
) -> None:
    # given receipts of 5, 13 and 7 units, the 13 failing twice
    receive(shop, 5, UNLUCKY, 7)
    receipts.failures = 2

    # when the read model (3 attempts, then park) catches up
    runner = stock_runner(fast("park", attempts=3))
    caught_up(runner, shop)

    # then every receipt counted once, and nothing was parked
    assert on_hand(shop) == 5 + UNLUCKY + 7
    assert receipts.failed == 2
    assert shop.dead_letters.list() == ()


def test_with_park_the_failing_event_becomes_a_dead_letter_and_the_rest_is_handled(
    shop: Shop,
    receipts: FlakyReceipts,
    stock_runner: Callable[[FaultPolicy], SubscriberRunner],
) -> None:
    # given receipts of 5, 13 (always failing) and 7, in one batch
    receive(shop, 5, UNLUCKY, 7)
    receipts.broken = True

    # when the read model catches up
    runner = stock_runner(fast("park", attempts=2))
    caught_up(runner, shop)

    # then 5 and 7 are counted, and the 13 (position 3) waits as a dead letter
    assert on_hand(shop) == 5 + 7
    (letter,) = shop.dead_letters.list()
    assert (letter.subscriber, letter.service, letter.position) == (
        "stock",
        "Inventory",
        3,
    )
    assert letter.event_type == "InventoryItem.StockReceived"
    assert (letter.originator_id, letter.originator_version) == (
        inventory_item_id(SKU),
        3,
    )
    assert letter.error == "RuntimeError: unlucky receipt"
    assert "Traceback" in letter.traceback
    assert letter.status == DeadLetterStatus.PARKED
    assert letter.resolved_at is None
    assert shop.dead_letters.get(str(letter.dead_letter_id)) == letter
    assert shop.dead_letters.list(subscriber="orders") == ()
    # the runner moved past it and carries on with new events
    shop.receive_stock(SKU, 1)
    caught_up(runner, shop)
    assert on_hand(shop) == 5 + 7 + 1


def test_a_retried_dead_letter_is_applied_exactly_once(
    shop: Shop,
    receipts: FlakyReceipts,
    stock_runner: Callable[[FaultPolicy], SubscriberRunner],
) -> None:
    # given a receipt of 13 parked, and the fault then fixed
    receive(shop, 5, UNLUCKY)
    receipts.broken = True
    caught_up(stock_runner(fast("park", attempts=1)), shop)
    (parked,) = shop.dead_letters.list()
    receipts.broken = False

    # when it is retried, then it counts, and the dead letter says retried
    retried = shop.dead_letters.retry(parked.dead_letter_id)
    assert on_hand(shop) == 5 + UNLUCKY
    assert retried.status == DeadLetterStatus.RETRIED
    assert retried.resolved_at is not None

    # when it is retried again, then that is refused and changes nothing
    with pytest.raises(DeadLetterStateError, match="it is retried"):
        shop.dead_letters.retry(parked.dead_letter_id)
    assert on_hand(shop) == 5 + UNLUCKY
    assert shop.dead_letters.list(status="parked") == ()


def test_two_retries_at_once_apply_the_event_once(
    shop: Shop,
    receipts: FlakyReceipts,
    stock_runner: Callable[[FaultPolicy], SubscriberRunner],
) -> None:
    # given a parked receipt of 13, the fault fixed
    receive(shop, UNLUCKY)
    receipts.broken = True
    caught_up(stock_runner(fast("park", attempts=1)), shop)
    (parked,) = shop.dead_letters.list()
    receipts.broken = False

    # when two callers retry it at the same moment
    start = threading.Barrier(2)

    def retry() -> str:
        start.wait()
        try:
            shop.dead_letters.retry(parked.dead_letter_id)
        except DeadLetterStateError:
            return "refused"
        return "retried"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(lambda _: retry(), range(2)))

    # then one applied it and the other was refused
    assert outcomes == ["refused", "retried"]
    assert on_hand(shop) == UNLUCKY
    assert receipts.handled == [UNLUCKY]


def test_a_retry_that_fails_again_stays_parked_and_a_discard_is_final(
    shop: Shop,
    receipts: FlakyReceipts,
    stock_runner: Callable[[FaultPolicy], SubscriberRunner],
) -> None:
    # given a parked receipt of 13, the fault not fixed
    receive(shop, 5, UNLUCKY)
    receipts.broken = True
    caught_up(stock_runner(fast("park", attempts=1)), shop)
    (parked,) = shop.dead_letters.list()

    # when it is retried, then it fails, writes nothing and keeps the new error
    receipts.error = "still unlucky"
    with pytest.raises(DeadLetterRetryFailedError, match="still unlucky"):
        shop.dead_letters.retry(parked.dead_letter_id)
    still = shop.dead_letters.get(parked.dead_letter_id)
    assert still.status == DeadLetterStatus.PARKED
    assert still.error == "RuntimeError: still unlucky"
    assert on_hand(shop) == 5

    # when it is discarded, then it is final: a retry is refused
    discarded = shop.dead_letters.discard(parked.dead_letter_id, "counted by hand")
    assert discarded.status == DeadLetterStatus.DISCARDED
    assert discarded.discard_reason == "counted by hand"
    receipts.broken = False
    with pytest.raises(DeadLetterStateError, match="it is discarded"):
        shop.dead_letters.retry(parked.dead_letter_id)
    with pytest.raises(DeadLetterStateError):
        shop.dead_letters.discard(parked.dead_letter_id, "again")
    assert on_hand(shop) == 5
    with pytest.raises(DeadLetterNotFoundError):
        shop.dead_letters.retry(inventory_item_id(SKU))


def test_after_a_rebuild_a_dead_letter_of_the_old_tables_is_not_applied_again(
    shop: Shop,
    receipts: FlakyReceipts,
    stock_runner: Callable[[FaultPolicy], SubscriberRunner],
) -> None:
    # given a parked receipt of 13, the fault fixed, and the read model rebuilt
    # from the log (which handled the 13 this time) and switched over
    receive(shop, 5, UNLUCKY)
    receipts.broken = True
    caught_up(stock_runner(fast("park", attempts=1)), shop)
    (parked,) = shop.dead_letters.list()
    receipts.broken = False
    (report,) = shop.rebuild("stock", mode="switch")
    assert report.switched
    assert on_hand(shop) == 5 + UNLUCKY

    # when the dead letter of the old tables is retried, then that is refused
    with pytest.raises(DeadLetterStateError, match="no longer serves readers"):
        shop.dead_letters.retry(parked.dead_letter_id)
    assert on_hand(shop) == 5 + UNLUCKY


def test_with_stop_the_read_model_halts_at_the_failing_event_until_restarted(
    shop: Shop,
    receipts: FlakyReceipts,
    stock_runner: Callable[[FaultPolicy], SubscriberRunner],
) -> None:
    # given receipts of 5, 13 (always failing) and 7
    receive(shop, 5, UNLUCKY, 7)
    receipts.broken = True

    # when the read model, told to stop, meets the 13
    runner = stock_runner(fast("stop", attempts=2))
    eventually(lambda: not runner.is_alive, 30, "the runner to halt")

    # then it halted before position 3: the 5 is counted, the 7 is not
    assert isinstance(runner.error, SubscriberHaltedError)
    assert runner.error.position == 3
    assert on_hand(shop) == 5
    assert shop.dead_letters.list() == ()
    (status,) = [
        status
        for status in subscriber_statuses(
            shop.subscribers.subscribers, shop.services, shop.views.reports.all()
        )
        if status.name == "stock"
    ]
    assert (status.state, status.position, status.running) == ("halted", 2, False)
    assert status.error_summary is not None
    assert "halted at InventoryItem.StockReceived" in status.error_summary
    assert "at position 3 after 2 attempts" in status.error_summary
    assert "unlucky receipt" in status.error_summary

    # when the fault is fixed and the read model restarted
    receipts.broken = False
    receipts.handled.clear()
    caught_up(stock_runner(fast("stop")), shop)

    # then it handles the rest from where it halted, each receipt once
    assert receipts.handled == [UNLUCKY, 7]
    assert on_hand(shop) == 5 + UNLUCKY + 7


def _tracking_write_of_stock(statement: str, parameters: Any) -> bool:
    writes = statement.lstrip().upper().startswith(("INSERT", "UPDATE"))
    return (
        writes and "eventshop_tracking" in statement and "stock@g1" in str(parameters)
    )


@pytest.mark.parametrize(
    ("kind", "failures", "attempts"),
    [
        # Counted against the attempts: fewer failures than attempts.
        ("handler error", 2, 3),
        # The database's fault: retried however often, never parked.
        ("database error", 4, 1),
    ],
)
def test_a_failure_mid_transaction_writes_nothing_and_the_retry_applies_once(
    shop: Shop,
    stock_runner: Callable[[FaultPolicy], SubscriberRunner],
    kind: str,
    failures: int,
    attempts: int,
) -> None:
    # given receipts of 5 and 7, and the tracking write failing a few times,
    # after the batch has already updated the stock row in its transaction
    receive(shop, 5, 7)
    failed: list[str] = []

    def fail(
        _connection: object,
        _cursor: object,
        statement: str,
        parameters: object,
        _context: object,
        _executemany: bool,
    ) -> None:
        if _tracking_write_of_stock(statement, parameters) and len(failed) < failures:
            failed.append(statement)
            if kind == "handler error":
                raise RuntimeError("injected before the tracking write")
            if shop.settings.engine == "sqlite":
                raise sqlite3.OperationalError("database is locked (injected)")
            raise psycopg.OperationalError("connection lost (injected)")

    event.listen(shop.views.engine, "before_cursor_execute", fail)
    try:
        # when the read model catches up, parking after `attempts` failures
        runner = stock_runner(fast("park", attempts=attempts))
        caught_up(runner, shop)
    finally:
        event.remove(shop.views.engine, "before_cursor_execute", fail)

    # then the failed transactions left nothing, and the stock counts once
    assert len(failed) == failures
    assert on_hand(shop) == 5 + 7
    assert shop.dead_letters.list() == ()


def test_the_dead_letters_commands_list_retry_and_discard(
    shop: Shop,
    receipts: FlakyReceipts,
    stock_runner: Callable[[FaultPolicy], SubscriberRunner],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    # given two receipts of 13 parked
    receive(shop, UNLUCKY, 1, UNLUCKY)
    receipts.broken = True
    caught_up(stock_runner(fast("park", attempts=1)), shop)
    first, second = shop.dead_letters.list()
    storage = ["--database-url", shop.settings.database_url()]
    capsys.readouterr()

    # when they are listed, then both are shown
    assert main(["dead-letters", "list", *storage]) == 0
    listed = capsys.readouterr().out
    assert str(first.dead_letter_id) in listed
    assert str(second.dead_letter_id) in listed
    assert "InventoryItem.StockReceived" in listed

    # when one is retried while the fault lasts, then it fails (exit 2, one line)
    assert main(["dead-letters", "retry", str(first.dead_letter_id), *storage]) == 2
    assert "unlucky receipt" in capsys.readouterr().err

    # when the fault is fixed, then the retry succeeds once
    receipts.broken = False
    assert main(["dead-letters", "retry", str(first.dead_letter_id), *storage]) == 0
    assert main(["dead-letters", "retry", str(first.dead_letter_id), *storage]) == 2
    assert on_hand(shop) == UNLUCKY + 1

    # when the other is discarded, then it shows as discarded with the reason
    discard = ["dead-letters", "discard", str(second.dead_letter_id)]
    assert main([*discard, "--reason", "duplicate delivery note", *storage]) == 0
    capsys.readouterr()
    assert main(["dead-letters", "list", "--status", "discarded", *storage]) == 0
    listed = capsys.readouterr().out
    assert str(second.dead_letter_id) in listed
    assert str(first.dead_letter_id) not in listed
    assert "duplicate delivery note" in listed
    assert on_hand(shop) == UNLUCKY + 1

    # and an id nobody parked is not found (exit 2), a malformed one refused
    unknown = str(inventory_item_id(SKU))
    assert main(["dead-letters", "retry", unknown, *storage]) == 2
    assert main(["dead-letters", "discard", "not-an-id", *storage]) == 2
