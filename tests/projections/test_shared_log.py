"""The window one process's followers share of a log: each page read once, each
event decoded once, laggards reading on their own, memory bounded (a log kept
in memory, so that every read can be counted)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, cast

import pytest
from eventsourcing.persistence import ApplicationRecorder, Notification

from application.persistence.subscriptions import Waker
from application.subscribers.shared_log import (
    WINDOW_EVENTS,
    LogFollower,
    LoggedEvent,
    SharedLog,
)

UNDECODABLE = "undecodable"
ORIGINATOR = uuid.uuid4()


class LogInMemory:
    """Stands in for a recorder: a list of notifications, counting what each
    read returns, and signalling writes as eventshop's recorders do."""

    poll_interval: float | None = None

    def __init__(self) -> None:
        self.stored: list[Notification] = []
        self.returned: Counter[int] = Counter()
        self.reads: list[tuple[int, int]] = []
        self._wakers: set[Waker] = set()

    def append(self, count: int, topic: str = "Written") -> None:
        for _ in range(count):
            self.stored.append(
                Notification(
                    id=len(self.stored) + 1,
                    originator_id=ORIGINATOR,
                    originator_version=len(self.stored) + 1,
                    topic=topic,
                    state=b"{}",
                )
            )
        for waker in list(self._wakers):
            waker.set()

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        assert not inclusive_of_start
        after = start or 0
        # Positions are 1, 2, 3...: the notification after ``after`` is at index
        # ``after``.
        end = len(self.stored) if stop is None else min(stop, len(self.stored))
        page = self.stored[after : min(after + limit, end)]
        self.reads.append((after, len(page)))
        self.returned.update(notification.id for notification in page)
        return page

    def wake_on_write(self, waker: Waker) -> None:
        self._wakers.add(waker)
        waker.set()

    def stop_waking(self, waker: Waker) -> None:
        self._wakers.discard(waker)


class Decoder:
    """Counts decodings; fails on notifications of the undecodable topic."""

    def __init__(self) -> None:
        self.decoded: Counter[int] = Counter()

    def __call__(self, notification: Notification) -> object:
        self.decoded[notification.id] += 1
        if notification.topic == UNDECODABLE:
            raise ValueError(f"cannot decode {notification.id}")
        return ("event", notification.id)


@pytest.fixture
def stored() -> LogInMemory:
    return LogInMemory()


@pytest.fixture
def decoder() -> Decoder:
    return Decoder()


@pytest.fixture
def log(stored: LogInMemory, decoder: Decoder) -> SharedLog:
    return SharedLog(cast(ApplicationRecorder, stored), decoder)


def follower_of(log: SharedLog, stack: list[Any]) -> LogFollower:
    following = log.follow()
    stack.append(following)
    return following.__enter__()


@pytest.fixture
def followers(log: SharedLog) -> Iterator[list[Any]]:
    stack: list[Any] = []
    yield stack
    for following in reversed(stack):
        following.__exit__(None, None, None)


def read_all(
    follower: LogFollower, position: int, head: int, limit: int = 500
) -> list[LoggedEvent]:
    """Takes batches from ``position`` until the follower reaches ``head``."""
    taken: list[LoggedEvent] = []
    while position < head:
        batch = follower.batch_after(position, limit=limit, timeout=5)
        assert batch, f"nothing after {position}, though the log goes to {head}"
        taken.extend(batch)
        position = batch[-1].id
    return taken


def test_followers_of_one_log_share_each_read_and_each_decode(
    log: SharedLog, stored: LogInMemory, decoder: Decoder, followers: list[Any]
) -> None:
    # given two followers of a log of 1,200 events, both at its start
    first = follower_of(log, followers)
    second = follower_of(log, followers)
    stored.append(1_200)

    # when each takes the whole log in batches and decodes every event
    one = read_all(first, 0, 1_200)
    other = read_all(second, 0, 1_200)
    events = [entry.event() for entry in one + other]

    # then each notification was read from the store once and decoded once,
    # and both were handed the same event objects
    assert [entry.id for entry in one] == list(range(1, 1_201))
    assert [entry.id for entry in other] == list(range(1, 1_201))
    assert set(stored.returned.values()) == {1}
    assert len(stored.returned) == 1_200
    assert set(decoder.decoded.values()) == {1}
    assert all(a is b for a, b in zip(events[:1_200], events[1_200:], strict=True))
    assert log.own_reads == 0


def test_a_follower_behind_the_window_reads_on_its_own_until_it_reaches_it(
    log: SharedLog, stored: LogInMemory, followers: list[Any]
) -> None:
    # given a follower at the head of a long log, the window holding nothing
    # it has passed
    leader = follower_of(log, followers)
    stored.append(3_000)
    read_all(leader, 0, 3_000, limit=1_000)
    assert leader.batch_after(3_000, limit=1_000, timeout=0) == ()
    assert log.held == 0

    # when a new follower starts from the beginning (a fresh generation)
    laggard = follower_of(log, followers)
    taken = read_all(laggard, 0, 3_000, limit=1_000)

    # then it read the log on its own, the leader was not dragged back
    assert [entry.id for entry in taken] == list(range(1, 3_001))
    assert log.own_reads >= 3
    # and once both are at the head, a new page is read once for the two
    reads_before = len(stored.reads)
    stored.append(10)
    ahead = leader.batch_after(3_000, limit=1_000, timeout=5)
    behind = laggard.batch_after(3_000, limit=1_000, timeout=5)
    assert [entry.id for entry in ahead] == list(range(3_001, 3_011))
    assert [entry.id for entry in behind] == list(range(3_001, 3_011))
    assert len(stored.reads) - reads_before == 1


def test_a_follower_ahead_of_the_window_moves_it_on_and_the_others_read_alone(
    log: SharedLog, stored: LogInMemory, followers: list[Any]
) -> None:
    # given a follower reading a long log from its start
    slow = follower_of(log, followers)
    fast = follower_of(log, followers)
    stored.append(2_000)
    first = slow.batch_after(0, limit=100, timeout=5)
    assert first[-1].id == 100

    # when another follower asks from much further on
    taken = fast.batch_after(1_900, limit=500, timeout=5)

    # then it gets what follows its own position, read from there
    assert [entry.id for entry in taken] == list(range(1_901, 2_001))
    assert stored.reads[-1] == (1_900, 100)
    # and the first follower goes on reading on its own, missing nothing
    rest = read_all(slow, 100, 2_000)
    assert [entry.id for entry in rest] == list(range(101, 2_001))
    assert log.own_reads >= 1


def test_the_window_holds_what_its_slowest_follower_needs_and_never_more_than_a_bound(
    log: SharedLog, stored: LogInMemory, followers: list[Any]
) -> None:
    # given a log far longer than the window's bound, and a follower that
    # stops after its first batch
    stored.append(3 * WINDOW_EVENTS)
    stuck = follower_of(log, followers)
    stuck.batch_after(0, limit=100, timeout=5)

    # when another follower takes the whole log
    busy = follower_of(log, followers)
    read_all(busy, 0, 3 * WINDOW_EVENTS, limit=1_000)

    # then the window kept no more than the bound for the stuck one
    assert log.held <= WINDOW_EVENTS
    # which then reads what fell out of the window on its own, in order
    taken = read_all(stuck, 0, 3 * WINDOW_EVENTS, limit=2_000)
    assert [entry.id for entry in taken] == list(range(1, 3 * WINDOW_EVENTS + 1))
    # and once every follower has passed an event, the window lets it go
    for follower in (busy, stuck):
        assert follower.batch_after(3 * WINDOW_EVENTS, limit=1_000, timeout=0) == ()
    assert log.held == 0


def test_an_event_that_cannot_be_decoded_fails_each_time_it_is_asked_for(
    log: SharedLog, stored: LogInMemory, decoder: Decoder, followers: list[Any]
) -> None:
    # given a log whose second event cannot be decoded
    follower = follower_of(log, followers)
    stored.append(1)
    stored.append(1, topic=UNDECODABLE)
    stored.append(1)
    good, bad, after = follower.batch_after(0, limit=10, timeout=5)

    # when a follower asks for its event twice, then it fails both times
    for _ in range(2):
        with pytest.raises(ValueError, match="cannot decode 2"):
            bad.event()
    # and is decoded again each time, while the others are decoded once
    assert good.event() == ("event", 1)
    assert after.event() == ("event", 3)
    assert after.event() == ("event", 3)
    assert decoder.decoded == Counter({1: 1, 2: 2, 3: 1})


def test_a_follower_waiting_at_the_head_is_woken_by_a_write(
    log: SharedLog, stored: LogInMemory, followers: list[Any]
) -> None:
    # given a follower waiting for events after the head of an empty log
    follower = follower_of(log, followers)
    got: list[Sequence[LoggedEvent]] = []
    waiting = threading.Thread(
        target=lambda: got.append(follower.batch_after(0, limit=10, timeout=60))
    )
    waiting.start()

    # when an event is written
    stored.append(1)
    waiting.join(timeout=60)

    # then the follower gets it without waiting out its timeout
    assert not waiting.is_alive()
    assert [[entry.id for entry in batch] for batch in got] == [[1]]


def test_a_stopping_follower_stops_waiting_when_the_log_is_interrupted(
    log: SharedLog, followers: list[Any]
) -> None:
    follower = follower_of(log, followers)
    stopping = threading.Event()
    got: list[Sequence[LoggedEvent]] = []
    waiting = threading.Thread(
        target=lambda: got.append(
            follower.batch_after(0, limit=10, timeout=60, stopping=stopping)
        )
    )
    waiting.start()
    stopping.set()
    log.interrupt()
    waiting.join(timeout=60)
    assert not waiting.is_alive()
    assert got == [()]
