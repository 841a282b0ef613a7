"""One reader per service log and process: the subscribers hosted in a process
that follow the same log share each page read from it and each event decoded.

A :class:`SharedLog` keeps a *window* of the log: the notifications read last,
each with its event decoded at most once, when a follower first asks for it
(the events are immutable, so every follower gets the same object). Followers
ask for the events after their own position (:meth:`LogFollower.batch_after`):

* within the window, they are served from it;
* at its head, one of them reads the next page for all (no thread of its own:
  whoever needs it first reads, the others wait for that read), when a write
  was signalled (LISTEN/NOTIFY, a write in this process) or, on SQLite, when
  the poll interval has passed (writes made by other processes);
* behind it (a fresh generation after a rebuild, a subscriber started late),
  a follower reads and decodes on its own until it reaches the window, rather
  than dragging the others back;
* ahead of it (a follower whose stored position another instance moved), the
  window moves on to it and those behind read on their own.

The window holds what its slowest follower still needs, and never more than a
bound: a follower that falls further behind than that reads on its own.

An event whose topic names no class, or whose state does not decode, is
*undecodable* (:meth:`LoggedEvent.undecodable`): its followers must not take it
for one they are not interested in (see ``application.subscribers.runner``).
"""

from __future__ import annotations

import bisect
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, cast

from eventsourcing.application import Application
from eventsourcing.persistence import ApplicationRecorder, Notification

from application.persistence.subscriptions import Waker
from application.subscribers.decoding import (
    Decode,
    UndecodableEventError,
    undecodable,
)

# The most events a window holds, whatever its followers need: about 20 MB.
WINDOW_EVENTS = 10_000


class SignallingRecorder(Protocol):
    """eventshop's recorders: they tell who asks when their log is written to,
    and say how often to look for writes they cannot signal."""

    poll_interval: float | None

    def wake_on_write(self, waker: Waker) -> None: ...

    def stop_waking(self, waker: Waker) -> None: ...


class Follower(Protocol):
    """What a runner reads its batches through (see ``LogFollower``)."""

    def batch_after(
        self,
        position: int | None,
        *,
        limit: int,
        timeout: float,
        stopping: threading.Event | None = None,
    ) -> Sequence[LoggedEvent]: ...

    def handled_up_to(self, position: int) -> None:
        """The subscriber recorded ``position``: what it read up to there
        will never be asked for again, unless the runner resyncs."""


class FollowedLog(Protocol):
    """Where a runner reads a service's log: that log itself, shared by the
    runners of the process (``SharedLog``), or the service's stream on the
    broker (``application.relay.broker_feed``)."""

    @property
    def name(self) -> str:
        """The service whose log it is."""

    def follow(self) -> AbstractContextManager[Follower]: ...

    def head(self) -> int | None:
        """The position of the last event it can deliver; None if it cannot
        tell a position past it from one it has yet to catch up with (a
        stream that lags the log while its relay catches up)."""

    def interrupt(self) -> None:
        """Wakes a follower waiting for events (the runner is stopping)."""

    def close(self) -> None:
        """Releases what its runner alone used."""


class Decoder(Protocol):
    """Decodes the events of a log once for all who ask (``SharedLog``)."""

    @property
    def name(self) -> str: ...

    def decode_once(self, entry: LoggedEvent) -> object: ...


class LoggedEvent:
    """A notification read from a log, and its event, decoded once when first
    asked for. A notification that fails to decode is left undecoded: every
    follower that asks decodes it again and fails as the first did."""

    __slots__ = ("_decoded", "_log", "notification")

    def __init__(self, notification: Notification, log: Decoder) -> None:
        self.notification = notification
        self._log = log
        self._decoded: object = _NOT_DECODED

    @property
    def id(self) -> int:
        return self.notification.id

    @property
    def topic(self) -> str:
        return self.notification.topic

    def event(self) -> object:
        if self._decoded is _NOT_DECODED:
            self._decoded = self._log.decode_once(self)
        return self._decoded

    def undecodable(self, *, decode: bool) -> UndecodableEventError | None:
        """Why this event cannot be decoded, or None: its topic must name a
        class and, if ``decode``, its state must decode (then the event is
        decoded, once, for every follower)."""
        if decode and self._decoded is not _NOT_DECODED:
            return None
        return undecodable(
            self._log.name,
            self.notification,
            (lambda _: self.event()) if decode else None,
        )


_NOT_DECODED = object()


class SharedLog:
    """The window of one service's log that this process's followers share."""

    def __init__(
        self, recorder: ApplicationRecorder, decode: Decode, name: str = "log"
    ) -> None:
        self.name = name
        """The service whose log it is (for messages)."""
        self._recorder = recorder
        self._decode = decode
        self._signals = cast(SignallingRecorder, recorder)
        self._poll_interval: float | None = getattr(recorder, "poll_interval", None)
        self._lock = threading.Lock()
        self._grown = threading.Condition(self._lock)
        self._decoding = threading.Lock()
        self._waker = _Waker(self)
        self._followers: set[LogFollower] = set()
        self._entries: list[LoggedEvent] = []
        self._ids: list[int] = []
        # The window holds every notification with ``base < id <= head``.
        self._base = 0
        self._head = 0
        self._started = False
        # Write signals counted, and the count as of the last read that reached
        # the head of the log: different means there may be more to read.
        self._signalled = 0
        self._caught_up_at = -1
        self._last_read = 0.0
        self._reading = False
        # Bumped when the window moves on to a follower ahead of it, so that a
        # read started before is not appended where it no longer belongs.
        self._epoch = 0
        self.reads = 0
        """Pages read for the window (followers' own reads are not counted)."""
        self.own_reads = 0
        self.decodes = 0

    # -- followers -----------------------------------------------------------

    @contextmanager
    def follow(self) -> Iterator[LogFollower]:
        """A follower of the log for the block's duration."""
        follower = LogFollower(self)
        with self._lock:
            first = not self._followers
            self._followers.add(follower)
        if first:
            self._start_signals()
        try:
            yield follower
        finally:
            with self._lock:
                self._followers.discard(follower)
                last = not self._followers
                self._evict()
            if last:
                self._stop_signals()

    @property
    def followers(self) -> int:
        """How many followers the log has now."""
        with self._lock:
            return len(self._followers)

    @property
    def held(self) -> int:
        """How many notifications the window holds."""
        with self._lock:
            return len(self._entries)

    def written(self) -> None:
        """Something was written to the log: whoever waits at its head reads."""
        with self._lock:
            self._signalled += 1
            self._grown.notify_all()

    def interrupt(self) -> None:
        """Wakes every waiting follower, so that one being stopped notices
        (see ``LogFollower.batch_after``)."""
        with self._lock:
            self._grown.notify_all()

    def head(self) -> int:
        return self._recorder.max_notification_id() or 0

    def close(self) -> None:
        """Nothing: the log is the process's, not one runner's."""

    def decode_once(self, entry: LoggedEvent) -> object:
        with self._decoding:
            if entry._decoded is _NOT_DECODED:
                self.decodes += 1
                entry._decoded = self._decode(entry.notification)
            return entry._decoded

    # -- reading -------------------------------------------------------------

    def _batch_after(
        self,
        follower: LogFollower,
        position: int,
        limit: int,
        timeout: float,
        stopping: threading.Event | None,
    ) -> Sequence[LoggedEvent]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                held_the_front = bool(self._ids) and follower.position < self._ids[0]
                follower.position = position
                if held_the_front:
                    self._evict()
                found = self._from_window(position, limit, deadline, stopping)
                if found is not None:
                    return found
                behind = self._base
            own = self._read_own(position, behind, limit)
            if own:
                return own
            # Nothing stored between it and the window (positions may have gaps).
            position = behind

    def _from_window(
        self,
        position: int,
        limit: int,
        deadline: float,
        stopping: threading.Event | None,
    ) -> Sequence[LoggedEvent] | None:
        """The events after ``position`` from the window, reading the next page
        for everyone when there may be more; None if ``position`` is behind
        the window (under the lock)."""
        while True:
            if not self._started or (position > self._head and not self._reading):
                self._move_to(position)
            if position < self._base:
                return None
            found = self._after(position, limit)
            more = self._may_have_more()
            if found and (len(found) >= limit or not more or self._reading):
                return found
            if more and not self._reading:
                self._read_page(limit)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (stopping is not None and stopping.is_set()):
                return ()
            self._grown.wait(min(remaining, self._until_poll()))

    def _after(self, position: int, limit: int) -> list[LoggedEvent]:
        start = bisect.bisect_right(self._ids, position)
        return self._entries[start : start + limit]

    def _may_have_more(self) -> bool:
        if self._signalled != self._caught_up_at:
            return True
        return (
            self._poll_interval is not None
            and time.monotonic() - self._last_read >= self._poll_interval
        )

    def _until_poll(self) -> float:
        if self._poll_interval is None:
            return 3600.0
        return max(self._last_read + self._poll_interval - time.monotonic(), 0.001)

    def _move_to(self, position: int) -> None:
        """Starts the window afresh at ``position`` (under the lock)."""
        self._entries.clear()
        self._ids.clear()
        self._base = self._head = position
        self._caught_up_at = -1
        self._started = True
        self._epoch += 1

    def _read_page(self, limit: int) -> None:
        """Reads the page after the window's head into it (called under the
        lock, which it releases while it waits for the database)."""
        self._reading = True
        head, epoch, signalled = self._head, self._epoch, self._signalled
        self._lock.release()
        try:
            page = self._recorder.select_notifications(
                head, limit, inclusive_of_start=False
            )
        finally:
            self._lock.acquire()
            self._reading = False
            self._grown.notify_all()
        self.reads += 1
        self._last_read = time.monotonic()
        if epoch != self._epoch:
            return
        if len(page) < limit:
            self._caught_up_at = signalled
        if page:
            self._entries.extend(LoggedEvent(n, self) for n in page)
            self._ids.extend(n.id for n in page)
            self._head = page[-1].id
            self._evict()

    def _read_own(self, position: int, up_to: int, limit: int) -> list[LoggedEvent]:
        """The page after ``position`` for a follower behind the window, read
        (and later decoded) for it alone; it ends where the window begins."""
        page = self._recorder.select_notifications(
            position, limit, stop=up_to, inclusive_of_start=False
        )
        with self._lock:
            self.own_reads += 1
        return [LoggedEvent(notification, self) for notification in page]

    def _evict(self) -> None:
        """Drops what every follower within the window has passed, and what
        exceeds the bound (under the lock)."""
        within = [
            follower.position
            for follower in self._followers
            if follower.position >= self._base
        ]
        passed = bisect.bisect_right(self._ids, min(within, default=self._head))
        excess = len(self._entries) - max(WINDOW_EVENTS, 4 * self._largest_limit())
        drop = max(passed, excess)
        if drop > 0:
            self._base = self._ids[drop - 1]
            del self._entries[:drop]
            del self._ids[:drop]

    def _largest_limit(self) -> int:
        return max((follower.limit for follower in self._followers), default=0)

    def _start_signals(self) -> None:
        if hasattr(self._signals, "wake_on_write"):
            self._signals.wake_on_write(self._waker)

    def _stop_signals(self) -> None:
        if hasattr(self._signals, "stop_waking"):
            self._signals.stop_waking(self._waker)


class LogFollower:
    """One follower of a shared log (a runner, a chain keeper)."""

    def __init__(self, log: SharedLog) -> None:
        self._log = log
        self.position = 0
        self.limit = 0

    def batch_after(
        self,
        position: int | None,
        *,
        limit: int,
        timeout: float,
        stopping: threading.Event | None = None,
    ) -> Sequence[LoggedEvent]:
        """Up to ``limit`` events after ``position``, in log order, waiting up
        to ``timeout`` seconds for one if there are none yet (then empty; at
        once when ``stopping`` is set and the log interrupted). Raises what
        the database raises."""
        self.limit = limit
        return self._log._batch_after(self, position or 0, limit, timeout, stopping)

    def handled_up_to(self, position: int) -> None:
        """Nothing: the window moves on as its followers ask for what is after."""


class _Waker:
    def __init__(self, log: SharedLog) -> None:
        self._log = weakref.ref(log)

    def set(self) -> None:
        log = self._log()
        if log is not None:
            log.written()


_logs: weakref.WeakKeyDictionary[Any, SharedLog] = weakref.WeakKeyDictionary()
_logs_lock = threading.Lock()


def shared_log(service: Application[Any]) -> SharedLog:
    """The shared log of ``service`` (one per service object, made on first use)."""
    with _logs_lock:
        log = _logs.get(service)
        if log is None:
            log = SharedLog(
                service.recorder, service.mapper.to_domain_event, service.name
            )
            _logs[service] = log
        return log
