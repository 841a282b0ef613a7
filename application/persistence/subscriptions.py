"""Subscriptions to a service's notification log, handed out in batches.

eventsourcing's ``ListenNotifySubscription`` already does the hard part: a thread
pulls every notification after a position, in pages, and pulls again whenever it
is told that something new was written. What it lacks for eventshop is

* a way to take everything already pulled as one batch, so a subscriber that is
  behind writes many events in one transaction instead of one each, and to wait
  for more with a timeout, so a runner can stop or heartbeat while idle; and
* a source of "something new was written" on SQLite, which has no LISTEN/NOTIFY:
  a poll of the log's head, plus an immediate wake-up for writes made by this
  process.

Catch-up and live are the same code path: the pull loop starts at the given
position and never stops pulling until it has reached the head.
"""

from __future__ import annotations

import queue
import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from eventsourcing.persistence import (
    ApplicationRecorder,
    ListenNotifySubscription,
    Notification,
    ShutDown,
)

R = TypeVar("R", bound=ApplicationRecorder)


class Waker(Protocol):
    """What a recorder sets when its log is written to (a threading.Event will
    do, or anything else with a ``set``)."""

    def set(self) -> None: ...


class BatchingSubscription(ListenNotifySubscription[R]):
    """A subscription that also hands out whole pages of notifications (up to
    the library's page size of 500)."""

    def next_batch(self, timeout: float) -> Sequence[Notification]:
        """Every notification pulled and not yet handed out, waiting up to
        ``timeout`` seconds for some; empty if none came. Raises the pull
        thread's error, or ``StopIteration`` once the subscription is stopped."""
        if self._notifications_index < len(self._notifications):
            batch = self._notifications[self._notifications_index :]
            self._notifications_index = len(self._notifications)
            return batch
        try:
            batch = self._notifications_queue.get(timeout=timeout)
        except queue.Empty:
            return ()
        except ShutDown:
            if self._thread_error is not None:
                raise self._thread_error from None
            raise StopIteration from None
        self._notifications_queue.task_done()
        self._notifications = batch
        self._notifications_index = len(batch)
        return batch


class LocalWrites:
    """Lets writers in this process wake the subscriptions that poll a database
    file, so embedded subscribers see a write at once instead of at the next poll."""

    _lock = threading.Lock()
    _listeners: dict[str, set[Waker]] = defaultdict(set)

    @classmethod
    def listen(cls, database: str, waker: Waker) -> None:
        with cls._lock:
            cls._listeners[database].add(waker)

    @classmethod
    def unlisten(cls, database: str, waker: Waker) -> None:
        with cls._lock:
            cls._listeners[database].discard(waker)

    @classmethod
    def written(cls, database: str) -> None:
        with cls._lock:
            listeners = list(cls._listeners.get(database, ()))
        for waker in listeners:
            waker.set()


class PollingSubscription(BatchingSubscription[R]):
    """For SQLite: looks for new notifications every ``poll_interval`` seconds,
    and at once when this process writes to the same database."""

    poll_interval = 0.1

    def __init__(
        self,
        recorder: R,
        database: str,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._database = database
        self._local_write = threading.Event()
        LocalWrites.listen(database, self._local_write)
        self._poll_thread = threading.Thread(
            target=self._poll, name=f"poll {database}", daemon=True
        )
        self._poll_thread.start()

    def _poll(self) -> None:
        while not self._has_been_stopped:
            self._local_write.wait(timeout=self.poll_interval)
            self._local_write.clear()
            self._has_been_notified.set()

    def stop(self) -> None:
        super().stop()
        self._local_write.set()
        LocalWrites.unlisten(self._database, self._local_write)

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)
        finally:
            self._poll_thread.join()
