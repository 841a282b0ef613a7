"""On SQLite, one active instance per subscriber: a lock file per subscriber
under the data folder, taken with ``flock``; the others stand by, and take over
when the holder releases it or its process dies."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from application.subscribers.leadership import FileLockLeadership
from tests.projections.runner_testing import eventually

HOLD_AND_WAIT = """
import sys, time
from pathlib import Path
from application.subscribers.leadership import FileLockLeadership
import threading
leadership = FileLockLeadership(Path(sys.argv[1]), "stock")
assert leadership.acquire(threading.Event(), lambda: None)
print("held", flush=True)
time.sleep(600)
"""


class Candidate:
    """Tries to take a leadership in a thread of its own."""

    def __init__(self, leadership: FileLockLeadership) -> None:
        self.leadership = leadership
        self.stopping = threading.Event()
        self.standing_by = threading.Event()
        self.acquired: bool | None = None
        self._thread = threading.Thread(target=self._acquire)
        self._thread.start()

    def _acquire(self) -> None:
        self.acquired = self.leadership.acquire(self.stopping, self.standing_by.set)

    def is_waiting(self) -> bool:
        return self._thread.is_alive()

    def give_up(self) -> None:
        self.stopping.set()
        self._thread.join()
        self.leadership.release()


@pytest.fixture
def candidates() -> Iterator[list[Candidate]]:
    started: list[Candidate] = []
    yield started
    for candidate in started:
        candidate.give_up()


def candidate(candidates: list[Candidate], leadership: FileLockLeadership) -> Candidate:
    started = Candidate(leadership)
    candidates.append(started)
    return started


def test_a_second_instance_stands_by_until_the_first_releases(
    tmp_path: Path, candidates: list[Candidate]
) -> None:
    # given an instance of a subscriber that holds its leadership
    first = FileLockLeadership(tmp_path, "stock")
    assert first.acquire(threading.Event(), lambda: None)
    assert first.is_held()

    # when a second instance tries, then it stands by
    second = candidate(candidates, FileLockLeadership(tmp_path, "stock"))
    eventually(second.standing_by.is_set, 30, "the second instance to stand by")
    assert second.is_waiting()

    # when the first releases it, then the second takes over
    first.release()
    eventually(lambda: not second.is_waiting(), 30, "the second to take over")
    assert second.acquired is True
    assert second.leadership.is_held()


def test_instances_of_different_subscribers_do_not_exclude_each_other(
    tmp_path: Path,
) -> None:
    stock = FileLockLeadership(tmp_path, "stock")
    orders = FileLockLeadership(tmp_path, "orders")
    try:
        assert stock.acquire(threading.Event(), lambda: None)
        assert orders.acquire(threading.Event(), lambda: None)
    finally:
        stock.release()
        orders.release()


def test_a_standby_takes_over_when_the_holding_process_is_killed(
    tmp_path: Path, candidates: list[Candidate]
) -> None:
    # given another process holding the leadership of a subscriber
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_WAIT, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        standby = candidate(candidates, FileLockLeadership(tmp_path, "stock"))
        eventually(standby.standing_by.is_set, 30, "this instance to stand by")
        assert standby.is_waiting()

        # when that process is killed (no chance to release anything)
        holder.kill()
        holder.wait()

        # then this instance takes over
        eventually(lambda: not standby.is_waiting(), 30, "this instance to take over")
        assert standby.acquired is True
    finally:
        holder.kill()
        holder.wait()


def test_a_stopping_standby_gives_up_waiting(
    tmp_path: Path, candidates: list[Candidate]
) -> None:
    first = FileLockLeadership(tmp_path, "stock")
    assert first.acquire(threading.Event(), lambda: None)
    try:
        second = candidate(candidates, FileLockLeadership(tmp_path, "stock"))
        eventually(second.standing_by.is_set, 30, "the second instance to stand by")
        second.stopping.set()
        eventually(lambda: not second.is_waiting(), 30, "the second to give up")
        assert second.acquired is False
        assert not second.leadership.is_held()
    finally:
        first.release()
