"""A runner, the ticker and a chain keeper wait out a transient database error
wherever it hits them (reading the position, reading the log, taking the lock,
heartbeats), report ``waiting`` meanwhile, and carry on from what is stored; any
other error still stops them. Faults are injected into a SQLite shop: no
server is restarted here (see ``tests/faults/test_database_restart.py``)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from application.cli import main as eventshop
from application.config import Settings
from application.persistence import DatabaseUnreachableError
from application.persistence.transient import is_transient, waiting_reason
from application.shop import Shop
from application.subscribers.background import BackgroundWorker
from application.subscribers.chain_keeper import ChainKeeper
from application.subscribers.hosting import PAYMENT_DEADLINE_TICKER
from application.subscribers.leadership import FileLockLeadership, Unshared
from application.subscribers.payment_deadline_ticker import TickerRunner
from application.subscribers.runner import SubscriberRunner
from domain.dead_letter import Failure, ParkedEvent
from domain.errors import DatabaseConnectionError, DatabaseUnavailableError
from domain.inventory import InventoryItem
from tests.projections.runner_testing import eventually

LOST = psycopg.OperationalError("server closed the connection unexpectedly")
LOCKED = sqlite3.OperationalError("database is locked")
TOPICS = frozenset(
    map(get_topic, (InventoryItem.Registered, InventoryItem.StockReceived))
)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    settings = Settings.from_url(data_dir=tmp_path / "data")
    with Shop(settings=settings, subscribers="workers") as opened:
        yield opened


class FlakySubscriber:
    """An in-memory subscriber of the Inventory log whose position read and
    reports raise what ``faults`` says, once each."""

    def __init__(self, faults: dict[str, BaseException] | None = None) -> None:
        self.name = "flaky"
        self.follows = "Inventory"
        self.topics = TOPICS
        self.faults = dict(faults or {})
        self.stored_position: int | None = None
        self.handled = 0
        self.reports: list[tuple[str, str | None]] = []
        self.running_reports = 0

    def _maybe_fail(self, where: str) -> None:
        fault = self.faults.pop(where, None)
        if fault is not None:
            raise fault

    def position(self) -> int | None:
        self._maybe_fail("position")
        return self.stored_position

    def process(
        self,
        events: Sequence[object],
        *,
        expected_position: int | None,
        new_position: int,
    ) -> bool:
        self._maybe_fail("process")
        if expected_position != self.stored_position:
            return False
        self.handled += len(events)
        self.stored_position = new_position
        return True

    def park(
        self, parked: ParkedEvent, failure: Failure, *, expected_position: int | None
    ) -> bool:
        raise AssertionError(f"nothing should be parked, yet {parked} was")

    def report(self, state: str, error: str | None = None) -> None:
        if state == "running":
            self.running_reports += 1
            # The first is the report on taking the lead; later ones are
            # heartbeats.
            where = "running" if self.running_reports == 1 else "heartbeat"
            self._maybe_fail(where)
        else:
            self._maybe_fail(state)
        self.reports.append((state, error))

    def states(self) -> list[str]:
        return [state for state, _ in self.reports]


class FlakyLeadership(Unshared):
    """Every instance may run, but taking the lead fails once."""

    def __init__(self, fault: BaseException) -> None:
        self.fault: BaseException | None = fault

    def acquire(self, stopping: threading.Event, waiting: Callable[[], None]) -> bool:
        if self.fault is not None:
            fault, self.fault = self.fault, None
            raise fault
        return super().acquire(stopping, waiting)


def fail_log_read_once(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, fault: BaseException
) -> None:
    recorder = shop.inventory.recorder
    select = recorder.select_notifications
    failed: list[bool] = []

    def flaky_select(*args: Any, **kwargs: Any) -> Sequence[Notification]:
        if not failed:
            failed.append(True)
            raise fault
        return select(*args, **kwargs)

    monkeypatch.setattr(recorder, "select_notifications", flaky_select)


def write_receipts(shop: Shop, count: int = 20) -> int:
    item = InventoryItem.register("FLAKY-1", "flaky", "1.00")
    for _ in range(count):
        item.receive(1)
    shop.inventory.save(item)
    return shop.inventory.log_head()


@pytest.fixture
def started() -> Iterator[list[SubscriberRunner]]:
    runners: list[SubscriberRunner] = []
    yield runners
    for runner in runners:
        runner.stop()
    for runner in runners:
        runner.join(30)


@pytest.mark.parametrize(
    "where",
    ["position", "log", "lock", "running", "heartbeat", "process", "sqlite log"],
)
def test_a_runner_waits_out_a_transient_error_and_carries_on(
    where: str,
    shop: Shop,
    started: list[SubscriberRunner],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a runner whose database touch ``where`` fails once, transiently
    monkeypatch.setattr(BackgroundWorker, "heartbeat_seconds", 0.0)
    head = write_receipts(shop)
    faults: dict[str, BaseException] = {}
    leadership = None
    if where == "log":
        fail_log_read_once(shop, monkeypatch, LOST)
    elif where == "sqlite log":
        fail_log_read_once(shop, monkeypatch, LOCKED)
    elif where == "lock":
        leadership = FlakyLeadership(LOST)
    else:
        faults[where] = LOST
    subscriber = FlakySubscriber(faults)

    # when it runs
    runner = SubscriberRunner(subscriber, shop.inventory, leadership)
    runner.start()
    started.append(runner)

    # then it handles every event, once, and is still running
    assert runner.wait_for(head, timeout=30), runner.error
    assert subscriber.handled == head
    assert runner.error is None
    assert runner.is_alive
    # having said what it waited for, and that it runs again
    waiting = [error for state, error in subscriber.reports if state == "waiting"]
    assert waiting, subscriber.reports
    assert all(
        error is not None and error.startswith("waiting for the database: ")
        for error in waiting
    ), waiting
    eventually(
        lambda: subscriber.states()[-1] == "running",
        10,
        "the runner to report running again",
    )


def test_a_runner_still_fails_on_an_error_that_is_not_the_databases(
    shop: Shop, started: list[SubscriberRunner]
) -> None:
    subscriber = FlakySubscriber({"position": ValueError("corrupt position")})
    runner = SubscriberRunner(subscriber, shop.inventory)
    runner.start()
    started.append(runner)
    runner.join(30)
    assert isinstance(runner.error, ValueError)
    assert subscriber.states()[-1] == "failed"


def test_a_standby_whose_report_fails_keeps_standing_by(
    tmp_path: Path,
    shop: Shop,
    started: list[SubscriberRunner],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a subscriber's lock held by someone else
    held = FileLockLeadership(tmp_path / "locks", "flaky")
    assert held.acquire(threading.Event(), lambda: None)
    try:
        leadership = FileLockLeadership(tmp_path / "locks", "flaky")
        leadership.retry_seconds = 0.01
        leadership.heartbeat_seconds = 0.0
        monkeypatch.setattr(BackgroundWorker, "heartbeat_seconds", 0.0)
        subscriber = FlakySubscriber({"standby": LOST})
        runner = SubscriberRunner(subscriber, shop.inventory, leadership)
        runner.start()
        started.append(runner)
        # when its standby report fails, it waits and stands by again
        eventually(lambda: "standby" in subscriber.states(), 10, "a standby report")
        assert runner.is_alive
        assert "waiting" in subscriber.states()
    finally:
        held.release()
    # and takes over once the lock is free
    head = write_receipts(shop, 3)
    assert runner.wait_for(head, timeout=30), runner.error


def test_the_ticker_waits_out_a_transient_error_taking_the_lock_or_ticking() -> None:
    ticks: list[int] = []
    reports: list[tuple[str, str | None]] = []

    def tick() -> None:
        ticks.append(1)
        if len(ticks) == 1:
            raise DatabaseUnavailableError(2.0, "connection refused")

    def report(state: str, error: str | None) -> None:
        reports.append((state, error))

    runner = TickerRunner("ticker", tick, 0.01, FlakyLeadership(LOST), report)
    runner.start()
    try:
        eventually(lambda: len(ticks) >= 3, 30, "the ticker to tick again")
        assert runner.is_alive
        assert runner.error is None
        eventually(lambda: runner.waiting_for is None, 10, "the ticker to recover")
    finally:
        runner.stop()
        runner.join(30)
    # it said it waited (for the lock, then for a tick), and that it runs again
    assert [state for state, _ in reports] == [
        "waiting",
        "running",
        "waiting",
        "running",
    ]
    assert reports[2][1] == (
        "waiting for the database: database unavailable for 2.0 s, nothing was "
        "written: connection refused"
    )


def test_status_shows_what_a_subscriber_and_the_ticker_wait_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a subscriber and the ticker that reported waiting
    settings = Settings.from_url(data_dir=tmp_path / "data")
    with Shop(settings=settings, subscribers="workers") as shop:
        shop.views.reports.record("stock", "waiting", "waiting for the database: gone")
        shop.views.reports.record(
            PAYMENT_DEADLINE_TICKER, "waiting", "waiting for the database: away"
        )

    # when status is shown
    code = eventshop(["status", "--data-dir", str(settings.data_dir)])

    # then it says what each waits for, and that nothing failed
    shown = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "stock: waiting for the database: gone" in shown
    assert f"{PAYMENT_DEADLINE_TICKER} (" in shown
    assert "waiting for the database: away" in shown


class FlakyChains:
    """A chain store in memory whose head read fails once."""

    def __init__(self) -> None:
        self.position = 0
        self.failed = False

    def head(self, _service: str) -> None:
        if not self.failed:
            self.failed = True
            raise LOST

    def extend(self, _service: str, page: Sequence[Notification], *, after: int) -> int:
        self.position = max(self.position, page[-1].id)
        return self.position


def test_a_chain_keeper_waits_out_a_transient_error(shop: Shop) -> None:
    head = write_receipts(shop, 5)
    chains = FlakyChains()
    keeper = ChainKeeper(shop.inventory, chains)  # type: ignore[arg-type]
    keeper.start()
    try:
        eventually(lambda: chains.position == head, 30, "the keeper to chain")
        assert chains.failed
        assert keeper.is_alive
        assert keeper.error is None
        assert keeper.waiting_for is None
    finally:
        keeper.stop()
        keeper.join(30)


def test_what_counts_as_transient() -> None:
    refused = DatabaseUnreachableError(
        ("h", 1, "db", "u"), "database does not exist", seconds=0.0, refused=True
    )
    unreachable = DatabaseUnreachableError(
        ("h", 1, "db", "u"), "connection refused", seconds=1.0, refused=False
    )
    assert is_transient(LOST)
    assert is_transient(LOCKED)
    assert is_transient(unreachable)
    assert is_transient(DatabaseUnavailableError(1.0, "connection refused"))
    assert not is_transient(refused)
    assert not is_transient(
        DatabaseConnectionError("h", 1, "db", "u", "no such user", refused=True)
    )
    assert not is_transient(ValueError("bad"))
    # wrapped: what caused it counts
    wrapped = RuntimeError("flush failed")
    wrapped.__cause__ = LOCKED
    assert is_transient(wrapped)
    assert waiting_reason(unreachable) == (
        "waiting for the database: cannot connect to PostgreSQL database 'db' "
        "at h:1 as 'u': connection refused"
    )
