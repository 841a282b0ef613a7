"""The lifecycle every background worker shares (``application.subscribers
.background``): its thread, its lead, its errors and outages, with the real
leaderships (a lock file on SQLite, an advisory lock on PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import Notification

from application.config import Settings
from application.persistence.transient import Outage
from application.shop import Shop
from application.subscribers.background import BackgroundWorker
from application.subscribers.chain_keeper import ChainKeeper
from application.subscribers.hosting import (
    SubscriberFailedError,
    leadership_for,
    raise_first_failure,
    stop_all,
)
from application.subscribers.leadership import Leadership
from tests.projections.runner_testing import eventually

LOST = psycopg.OperationalError("server closed the connection unexpectedly")


class Counting(BackgroundWorker):
    """Counts while it leads; its steps fail as ``faults`` says, in turn."""

    heartbeat_seconds = 0.01

    def __init__(
        self,
        name: str,
        leadership: Leadership,
        faults: Sequence[BaseException | None] = (),
    ) -> None:
        self.reports: list[tuple[str, str | None]] = []
        super().__init__(
            name,
            thread_name=f"counting {name}",
            leadership=leadership,
            outage=Outage(f"counting {name}", self._report),
        )
        self.faults = list(faults)
        self.count = 0
        self.standing_by = threading.Event()
        self.heartbeats = 0
        self.said: list[str] = []

    def _report(self, state: str, error: str | None) -> None:
        self.reports.append((state, error))

    def _work(self) -> None:
        while not self.stopping.wait(0.005):
            if not self.still_leading():
                return
            if self.faults:
                fault = self.faults.pop(0)
                if fault is not None:
                    raise fault
            self.outage.over()
            self.count += 1

    def _standing_by(self) -> None:
        self.standing_by.set()

    def _took_lead(self) -> None:
        self.said.append("took lead")

    def _heartbeat(self) -> None:
        self.heartbeats += 1

    def _stopped(self) -> None:
        self.said.append("stopped")

    def _failed(self, error: BaseException) -> None:
        self.said.append(f"failed: {error}")

    def _ended(self) -> None:
        self.said.append("ended")


def alive(worker: BackgroundWorker) -> bool:
    # A call, not the property: mypy would take the property for a constant.
    return worker.is_alive


def quick(leadership: Leadership) -> Leadership:
    """``leadership``, tried (and its standby reported) every 10 ms."""
    for attribute in ("retry_seconds", "heartbeat_seconds"):
        if hasattr(leadership, attribute):
            setattr(leadership, attribute, 0.01)
    return leadership


@pytest.fixture
def workers() -> Iterator[list[BackgroundWorker]]:
    started: list[BackgroundWorker] = []
    yield started
    stop_all(started)


def counting(
    settings: Settings,
    workers: list[BackgroundWorker],
    faults: Sequence[BaseException | None] = (),
    name: str = "counting",
) -> Counting:
    worker = Counting(name, quick(leadership_for(settings, name)), faults)
    workers.append(worker)
    return worker


def test_a_worker_works_in_its_thread_until_stopped(
    settings: Settings, workers: list[BackgroundWorker]
) -> None:
    worker = counting(settings, workers)
    assert not alive(worker)
    worker.join(1)  # not started: nothing to wait for

    worker.start()
    eventually(lambda: worker.count > 3, 10, "the worker to work")
    eventually(lambda: worker.heartbeats > 0, 10, "a heartbeat")
    assert alive(worker)
    assert worker.leadership.is_held()

    worker.stop()
    worker.join(10)
    assert not alive(worker)
    assert worker.error is None
    assert worker.said == ["took lead", "stopped", "ended"]
    # and it gave up its lead: another instance takes it at once
    other = quick(leadership_for(settings, "counting"))
    assert other.acquire(threading.Event(), lambda: None)
    other.release()


def test_an_error_ends_the_worker_and_is_kept_for_its_host(
    settings: Settings, workers: list[BackgroundWorker]
) -> None:
    boom = ValueError("boom")
    worker = counting(settings, workers, [None, None, boom])
    other = counting(settings, workers, name="other")
    worker.start()
    other.start()
    worker.join(10)

    assert not alive(worker)
    assert worker.error is boom
    assert worker.count == 2
    assert worker.said == ["took lead", "failed: boom", "ended"]
    # it gave up its lead as it ended
    successor = quick(leadership_for(settings, "counting"))
    assert successor.acquire(threading.Event(), lambda: None)
    successor.release()
    # and its host raises it, naming it, whichever worker it is
    assert alive(other)
    with pytest.raises(SubscriberFailedError, match="counting failed") as raised:
        raise_first_failure([other, worker])
    assert raised.value.error is boom


def test_a_standby_takes_over_when_the_leader_stops(
    settings: Settings, workers: list[BackgroundWorker]
) -> None:
    leader = counting(settings, workers)
    leader.start()
    eventually(lambda: leader.count > 0, 10, "the leader to work")
    standby = counting(settings, workers)
    standby.start()
    assert standby.standing_by.wait(10)
    assert standby.count == 0
    assert standby.said == []

    leader.stop()
    leader.join(10)
    eventually(lambda: standby.count > 0, 10, "the standby to take over")
    assert standby.said == ["took lead"]
    assert standby.error is None


def test_an_outage_is_waited_out_reported_then_over(
    settings: Settings, workers: list[BackgroundWorker]
) -> None:
    # given a worker whose database goes away twice in a row, once it works
    worker = counting(settings, workers, [None, LOST, LOST])
    worker.start()

    # then it waits, says so, takes the lead again and carries on
    eventually(lambda: worker.count > 3, 30, "the worker to carry on")
    assert alive(worker)
    assert worker.error is None
    assert worker.waiting_for is None
    states = [state for state, _ in worker.reports]
    assert states == ["waiting", "waiting", "running"], worker.reports
    reason = worker.reports[0][1]
    assert reason is not None
    assert reason.startswith("waiting for the database: ")
    assert worker.said == ["took lead"] * 3


def test_while_it_waits_it_says_why(
    settings: Settings, workers: list[BackgroundWorker]
) -> None:
    worker = counting(settings, workers, [LOST] * 1000)
    worker.start()
    eventually(lambda: worker.waiting_for is not None, 10, "an outage")
    assert alive(worker)
    assert str(worker.waiting_for).startswith("waiting for the database: ")
    # and it stops while it waits
    worker.stop()
    worker.join(10)
    assert not alive(worker)
    assert worker.error is None


class FailingChains:
    """A chain store whose head cannot be read, for a reason of its own."""

    def head(self, _service: str) -> None:
        raise ValueError("no such chain")

    def extend(self, _service: str, page: Sequence[Notification], *, after: int) -> int:
        raise AssertionError("never reached")


def test_a_chain_keeper_that_fails_is_reported_like_a_runner(
    shop: Shop, workers: list[BackgroundWorker]
) -> None:
    chains: Any = FailingChains()
    keeper = ChainKeeper(shop.inventory, chains)
    workers.append(keeper)
    keeper.start()
    keeper.join(10)
    assert isinstance(keeper.error, ValueError)
    with pytest.raises(SubscriberFailedError, match="chain_inventory failed"):
        raise_first_failure([keeper])
