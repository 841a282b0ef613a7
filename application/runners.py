"""Hosting subscribers: a thread per subscriber that follows a service's log.

The same runner serves both ways of hosting:

* embedded: ``Shop()`` starts one runner per subscriber in its own process;
* distributed: ``eventshop worker NAME`` runs one runner in a process of its own,
  and on PostgreSQL holds an advisory lock named after the subscriber while it
  is active, so that a second instance waits as a standby and takes over when
  the first one dies (its session ends, and the lock with it).

A runner reads its position, subscribes to the log after it and hands each batch
to the subscriber, which writes the batch's effects and the new position in one
transaction. Whatever happens (a crash, a lost lock, another instance racing
it) the stored position is the truth it restarts from.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from application.config import PostgresLocation

log = logging.getLogger(__name__)

# How long an idle runner waits for new events before it heartbeats and checks
# whether it should stop.
IDLE_WAIT_SECONDS = 0.5
HEARTBEAT_SECONDS = 2.0


class Subscriber(Protocol):
    """Something that handles a service's events exactly once."""

    @property
    def name(self) -> str: ...

    @property
    def follows(self) -> str:
        """Name of the service whose log it reads."""

    @property
    def topics(self) -> frozenset[str]:
        """Topics of the events it handles; it sees no others."""

    def position(self) -> int | None:
        """Last notification id handled (re-read from storage)."""

    def process(
        self,
        events: Sequence[object],
        *,
        expected_position: int | None,
        new_position: int,
    ) -> bool:
        """Handles ``events`` and moves the position, atomically; False if the
        stored position was not ``expected_position`` (nothing written)."""

    def report(self, state: str, error: str | None = None) -> None:
        """Records the runner's state and heartbeat for ``eventshop status``."""


class Leadership(Protocol):
    def acquire(self, stopping: threading.Event, waiting: Callable[[], None]) -> bool:
        """Blocks until this instance may run (True) or it is stopping (False),
        calling ``waiting`` now and then while it waits."""

    def is_held(self) -> bool: ...

    def release(self) -> None: ...


class Unshared:
    """For SQLite: every instance may run; the position check in each batch's
    transaction is what keeps two of them from applying an event twice."""

    def acquire(self, stopping: threading.Event, waiting: Callable[[], None]) -> bool:
        return not stopping.is_set()

    def is_held(self) -> bool:
        return True

    def release(self) -> None:
        pass


class AdvisoryLockLeadership:
    """At most one active instance per subscriber across every process on the
    PostgreSQL server: a session-level advisory lock on a connection of its own."""

    retry_seconds = 0.5

    def __init__(self, location: PostgresLocation, subscriber: str) -> None:
        self._conninfo = location.conninfo()
        # Advisory locks are per database, so the schema is part of the name:
        # two shops in two schemas of one database must not block each other.
        scope = f"eventshop subscriber {location.dbname}.{location.schema}.{subscriber}"
        digest = hashlib.blake2b(scope.encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None

    def acquire(self, stopping: threading.Event, waiting: Callable[[], None]) -> bool:
        last_waiting = 0.0
        while not stopping.is_set():
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = psycopg.connect(
                        self._conninfo, autocommit=True, connect_timeout=5
                    )
                row = self._connection.execute(
                    "SELECT pg_try_advisory_lock(%s)", (self.key,)
                ).fetchone()
                if row is not None and row[0] is True:
                    return True
            except psycopg.OperationalError:
                self._drop_connection()
            if time.monotonic() - last_waiting > HEARTBEAT_SECONDS:
                waiting()
                last_waiting = time.monotonic()
            stopping.wait(self.retry_seconds)
        return False

    def is_held(self) -> bool:
        connection = self._connection
        if connection is None or connection.closed:
            return False
        try:
            connection.execute("SELECT 1")
        except psycopg.Error:
            self._drop_connection()
            return False
        return True

    def release(self) -> None:
        connection = self._connection
        if connection is not None and not connection.closed:
            with contextlib.suppress(psycopg.Error):
                connection.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None


class SubscriberRunner:
    """Runs one subscriber in a thread until stopped."""

    def __init__(
        self,
        subscriber: Subscriber,
        service: Application[Any],
        leadership: Leadership | None = None,
    ) -> None:
        self.subscriber = subscriber
        self.service = service
        self.leadership = leadership or Unshared()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self._position: int | None = None
        self._progress = threading.Condition()
        self._thread = threading.Thread(
            target=self._run, name=f"subscriber {subscriber.name}", daemon=True
        )

    @property
    def name(self) -> str:
        return self.subscriber.name

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        with self._progress:
            self._progress.notify_all()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def wait_for(self, position: int, timeout: float) -> bool:
        """Blocks until the subscriber has handled the log up to ``position``;
        False on timeout, or at once if the runner stopped or failed."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while (self._position or 0) < position:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.stopping.is_set() or self.error:
                    return False
                self._progress.wait(remaining)
        return True

    # -- the thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            while self.leadership.acquire(
                self.stopping, lambda: self.subscriber.report("standby")
            ):
                try:
                    self.subscriber.report("running")
                    self._follow()
                finally:
                    self.leadership.release()
            self.subscriber.report("stopped")
        except BaseException as error:
            self.error = error
            log.exception("subscriber %s failed", self.name)
            self._report_failure(error)
            with self._progress:
                self._progress.notify_all()

    def _report_failure(self, error: BaseException) -> None:
        try:
            self.subscriber.report("failed", "".join(traceback.format_exception(error)))
        except Exception:
            log.exception("could not record the failure of %s", self.name)

    def _follow(self) -> None:
        """Follows the log until stopped, the lock is lost, or the stored
        position turns out to have moved under us (then the caller resyncs)."""
        position = self.subscriber.position()
        self._advance(position)
        topics = self.subscriber.topics
        mapper = self.service.mapper
        last_heartbeat = time.monotonic()
        with self.service.recorder.subscribe(gt=position) as subscription:
            while not self.stopping.is_set():
                try:
                    batch: Sequence[Notification] = subscription.next_batch(  # type: ignore[attr-defined]
                        timeout=IDLE_WAIT_SECONDS
                    )
                except StopIteration:
                    return
                if time.monotonic() - last_heartbeat > HEARTBEAT_SECONDS:
                    if not self.leadership.is_held():
                        return
                    self.subscriber.report("running")
                    last_heartbeat = time.monotonic()
                if not batch:
                    continue
                events = [
                    mapper.to_domain_event(notification)
                    for notification in batch
                    if notification.topic in topics
                ]
                new_position = batch[-1].id
                if not self.subscriber.process(
                    events, expected_position=position, new_position=new_position
                ):
                    return
                position = new_position
                self._advance(position)

    def _advance(self, position: int | None) -> None:
        with self._progress:
            self._position = position
            self._progress.notify_all()
