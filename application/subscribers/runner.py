"""Hosting subscribers: a thread per subscriber that follows a service's log.

The same runner serves every way of hosting:

* embedded: ``Shop()`` starts one runner per subscriber in a helper process
  (or, on request, in its own threads);
* distributed: ``eventshop worker NAME`` runs runners in a process of its own.

Wherever it runs, one instance per subscriber is active: it holds a lock named
after the subscriber (an advisory lock on PostgreSQL, a lock file on SQLite)
while it is active, so that a second instance waits as a standby and takes over
when the first one dies (its session or its file closes, and the lock with it).

A runner reads its position, follows the log after it through the process's
shared reader of that log (``application.subscribers.shared_log``: one read and one
decoding of each page for every runner of the process) and hands each batch to
the subscriber, which writes the batch's effects and the new position in one
transaction. Batches are paced while the log is busy (see
:class:`~application.config.Batching`). Whatever happens (a crash, a lost
lock, another instance racing it) the stored position is the truth it
restarts from.

When a handler raises, the runner follows the subscriber's
:class:`~application.config.FaultPolicy`: it retries the batch with backoff
(every attempt is a transaction of its own, so a failed one leaves nothing
behind), then narrows the failure down to one event by trying the batch's
events one at a time, and gives up on that event by halting before it
(``stop``) or by parking it as a dead letter while moving past it, in one
transaction (``park``). An event that cannot be decoded (its topic names no
class, or its state does not decode) is given up on in the same way, at once:
no retry would decode it. It is never taken for one the subscriber does not
handle, unless its topic names a class the subscriber does not handle.

When the database goes away (a lost connection, a restart, an outage, a busy
SQLite file: see ``application.persistence.transient``) wherever the runner
touches it (its position, the log, its lock, its reports), the runner waits
with a bounded backoff, reporting ``waiting`` when the database lets it, and
resumes from its stored position; such errors never count against the fault
policy's attempts.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import logging
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from application.config import Batching, FaultPolicy, PostgresLocation
from application.persistence.budget import backoff
from application.persistence.connections import application_name
from application.persistence.transient import (
    Outage,
    is_transient,
    lead_through_outages,
)
from application.subscribers.shared_log import (
    LogFollower,
    LoggedEvent,
    SharedLog,
    UndecodableEventError,
    names_a_class,
    shared_log,
)
from domain.dead_letter import Failure, ParkedEvent

log = logging.getLogger(__name__)

# How long an idle runner waits for new events before it heartbeats and checks
# whether it should stop.
IDLE_WAIT_SECONDS = 0.5
HEARTBEAT_SECONDS = 2.0
# A batch with nothing the subscriber handles only moves its position: that
# move waits for the next batch it handles, for the log to go quiet, or for
# this long, so that a busy log of events it ignores costs it no transactions.
UNRECORDED_SECONDS = 1.0


def parked_event(notification: Notification) -> ParkedEvent:
    """What a dead letter records of the event it parks."""
    return ParkedEvent(
        position=notification.id,
        topic=notification.topic,
        originator_id=notification.originator_id,  # type: ignore[arg-type]
        originator_version=notification.originator_version,
    )


class SubscriberHaltedError(RuntimeError):
    """A subscriber with the ``stop`` policy gave up on an event: it handles
    nothing after it until it is restarted (after the fault is fixed)."""

    def __init__(
        self,
        subscriber: str,
        position: int,
        event: ParkedEvent | None,
        attempts: int,
        error: BaseException,
    ) -> None:
        self.subscriber = subscriber
        self.position = position
        """Of the event it halted before (or, with no event to blame, of the
        position it failed to move to)."""
        self.event = event
        self.attempts = attempts
        self.error = error
        at = f"position {position}" if event is None else str(event)
        super().__init__(
            f"{subscriber} halted at {at} after {_attempts(attempts)}: "
            f"{Failure.of(error).error}"
        )

    def report(self) -> str:
        """What ``eventshop status`` shows: this message, then the traceback."""
        return f"{self}\n{Failure.of(self.error).traceback}"


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


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

    def park(
        self, parked: ParkedEvent, failure: Failure, *, expected_position: int | None
    ) -> bool:
        """Records a dead letter of the event at ``parked.position`` and moves
        the position there, atomically; False (nothing written) as ``process``."""

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


class _LockSession:
    """One PostgreSQL session per process and server that holds every advisory
    lock this process's subscribers take: one connection instead of one per
    subscriber. When the session dies the server drops all its locks, and every
    holder here learns it at its next check. It is closed when nobody here
    holds a lock or tries to take one any more (a shop closed)."""

    _sessions: ClassVar[dict[str, _LockSession]] = {}
    _sessions_lock = threading.Lock()

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._lock = threading.Lock()
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None
        self._held: set[int] = set()
        self._users = 0

    @classmethod
    def for_server(cls, conninfo: str) -> _LockSession:
        with cls._sessions_lock:
            if conninfo not in cls._sessions:
                cls._sessions[conninfo] = cls(conninfo)
            return cls._sessions[conninfo]

    def try_lock(self, key: int) -> bool:
        with self._lock:
            # Advisory locks are re-entrant within a session; a second holder
            # in this process must wait like one in another process.
            if key in self._held:
                return False
            connection = self._connect()
            row = connection.execute(
                "SELECT pg_try_advisory_lock(%s)", (key,)
            ).fetchone()
            if row is not None and row[0] is True:
                self._held.add(key)
                return True
            return False

    def holds(self, key: int) -> bool:
        with self._lock:
            if key not in self._held or self._connection is None:
                return False
            try:
                self._connection.execute("SELECT 1")
            except psycopg.Error:
                self._forget()
                return False
            return True

    def unlock(self, key: int) -> None:
        with self._lock:
            if key in self._held and self._connection is not None:
                self._held.discard(key)
                with contextlib.suppress(psycopg.Error):
                    self._connection.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def enter(self) -> None:
        """Someone here is about to try for a lock (and may then hold it)."""
        with self._lock:
            self._users += 1

    def leave(self) -> None:
        """Someone here neither tries for a lock nor holds one any more."""
        with self._lock:
            self._users -= 1
            if self._users <= 0 and not self._held:
                self._users = 0
                self._forget()

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._connection is None or self._connection.closed:
            self._forget()
            self._connection = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=5,
                application_name=application_name("locks"),
            )
        return self._connection

    def _forget(self) -> None:
        """The session is gone, and with it every lock it held."""
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
        self._connection = None
        self._held.clear()


class _TriedNowAndThen(ABC):
    """A leadership taken by trying a lock every ``retry_seconds`` until it is
    free: the standby instances are the ones still trying."""

    retry_seconds = 0.5

    def acquire(self, stopping: threading.Event, waiting: Callable[[], None]) -> bool:
        last_waiting = 0.0
        while not stopping.is_set():
            try:
                if self._try_lock():
                    return True
            except OSError:
                # A lock file that cannot be opened just now. A database error
                # is the caller's to wait out (and to report).
                log.warning("could not try the lock; retrying", exc_info=True)
            if time.monotonic() - last_waiting > HEARTBEAT_SECONDS:
                waiting()
                last_waiting = time.monotonic()
            stopping.wait(self.retry_seconds)
        return False

    @abstractmethod
    def _try_lock(self) -> bool:
        """Takes the lock if it is free (True), at once."""


class AdvisoryLockLeadership(_TriedNowAndThen):
    """At most one active instance per subscriber across every process on the
    PostgreSQL server: a session-level advisory lock, taken on this process's
    shared lock session."""

    def __init__(self, location: PostgresLocation, subscriber: str) -> None:
        self._session = _LockSession.for_server(location.conninfo())
        # Advisory locks are per database, so the schema is part of the name:
        # two shops in two schemas of one database must not block each other.
        scope = f"eventshop subscriber {location.dbname}.{location.schema}.{subscriber}"
        digest = hashlib.blake2b(scope.encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)

    def acquire(self, stopping: threading.Event, waiting: Callable[[], None]) -> bool:
        # The session stays open while this instance tries or holds the lock.
        self._session.enter()
        try:
            acquired = super().acquire(stopping, waiting)
        except BaseException:
            self._session.leave()
            raise
        if not acquired:
            self._session.leave()
        return acquired

    def _try_lock(self) -> bool:
        return self._session.try_lock(self.key)

    def is_held(self) -> bool:
        return self._session.holds(self.key)

    def release(self) -> None:
        self._session.unlock(self.key)
        self._session.leave()


class FileLockLeadership(_TriedNowAndThen):
    """For SQLite: at most one active instance per subscriber across every
    process using the data folder, as the advisory lock does on PostgreSQL:
    an exclusive ``flock`` on a file named after the subscriber. The kernel
    releases it when the process dies, however it dies; and since it belongs
    to an open file, not to a process, two shops in one process exclude each
    other too."""

    def __init__(self, data_dir: Path, subscriber: str) -> None:
        self.path = data_dir / "locks" / f"{subscriber}.lock"
        self._file: IO[bytes] | None = None

    def _try_lock(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("ab")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        except BaseException:
            file.close()
            raise
        self._file = file
        return True

    def is_held(self) -> bool:
        # Nothing but closing the file (or dying) gives up a flock.
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Outcome(enum.Enum):
    APPLIED = "applied"
    RESYNC = "resync"
    """The stored position moved under us, or the runner is stopping."""


@dataclass(frozen=True)
class _GaveUp:
    """An attempt that kept failing with errors of its own."""

    error: BaseException
    attempts: int


@dataclass(frozen=True)
class _Culprit:
    """The first event of a batch that fails on its own."""

    index: int
    position: int | None
    """The position after the events before it, which were applied."""
    failure: _GaveUp


class SubscriberRunner:
    """Runs one subscriber in a thread until stopped, or until it halts on an
    event under the ``stop`` fault policy (then ``error`` is a
    :class:`SubscriberHaltedError`)."""

    def __init__(
        self,
        subscriber: Subscriber,
        service: Application[Any],
        leadership: Leadership | None = None,
        policy: FaultPolicy | None = None,
        *,
        batching: Batching | None = None,
        log: SharedLog | None = None,
    ) -> None:
        self.subscriber = subscriber
        self.service = service
        self.leadership = leadership or Unshared()
        self.policy = policy or FaultPolicy()
        self.batching = batching or Batching()
        self.log = log or shared_log(service)
        """Where it reads the log: shared with the other runners of this
        process that follow the same service."""
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
        self.log.interrupt()
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
        # Reports "waiting" (and the reason) while it waits, "running" once
        # it reads the log again.
        outage = Outage(f"subscriber {self.name}", self._report)
        try:
            # A lost connection, a server restarting or gone for a while is
            # waited out, then the runner resumes from the stored position
            # (effects and position are one transaction: nothing is done twice).
            lead_through_outages(lambda: self._lead(outage), outage, self.stopping)
            self._report("stopped")
        except SubscriberHaltedError as halt:
            self.error = halt
            log.error("%s", halt)
            self._report("halted", halt.report())
            with self._progress:
                self._progress.notify_all()
        except BaseException as error:
            self.error = error
            log.exception("subscriber %s failed", self.name)
            self._report_failure(error)
            with self._progress:
                self._progress.notify_all()

    def _lead(self, outage: Outage) -> bool:
        """Takes the lead (False: stopped while standing by) and follows the
        log while it holds it. Raises what the database raises."""
        if not self.leadership.acquire(
            self.stopping, lambda: self.subscriber.report("standby")
        ):
            return False
        try:
            self.subscriber.report("running")
            self._follow(outage)
        finally:
            self.leadership.release()
        return True

    def _report_failure(self, error: BaseException) -> None:
        self._report("failed", "".join(traceback.format_exception(error)))

    def _follow(self, outage: Outage) -> None:
        """Follows the log until stopped, the lock is lost, or the stored
        position turns out to have moved under us (then the caller resyncs)."""
        position = self.subscriber.position()
        self._advance(position)
        with self.log.follow() as follower:
            _Following(self, follower, position, outage).run()

    # -- fault handling ------------------------------------------------------

    def _deliver(
        self,
        notifications: Sequence[LoggedEvent],
        position: int | None,
        new_position: int,
    ) -> bool:
        """Handles ``notifications`` and moves the position to ``new_position``
        as the fault policy says; False if the runner must resync (or stop).
        Raises :class:`SubscriberHaltedError` when it gives up under ``stop``."""
        pending = list(notifications)
        while pending or position != new_position:
            outcome = self._retrying(
                partial(self._process, pending, position, new_position)
            )
            if outcome is _Outcome.APPLIED:
                return True
            if outcome is _Outcome.RESYNC:
                return False
            if not pending:
                # Nothing to blame or to park: only the position failed to move.
                raise SubscriberHaltedError(
                    self.name, new_position, None, outcome.attempts, outcome.error
                )
            if len(pending) == 1:
                culprit = _Culprit(0, position, outcome)
            else:
                found = self._one_at_a_time(pending, position)
                if found is _Outcome.RESYNC:
                    return False
                if found is _Outcome.APPLIED:
                    # The batch failed as a whole but not event by event.
                    position = pending[-1].id
                    pending = []
                    continue
                culprit = found
            failing = pending[culprit.index]
            if not self._give_up(failing, culprit.position, culprit.failure):
                return False
            position = failing.id
            self._advance(position)
            pending = pending[culprit.index + 1 :]
        return True

    def _one_at_a_time(
        self, notifications: Sequence[LoggedEvent], position: int | None
    ) -> _Outcome | _Culprit:
        """Applies the events one transaction each, up to the first that keeps
        failing on its own."""
        for index, notification in enumerate(notifications):
            outcome = self._retrying(
                partial(self._process, [notification], position, notification.id)
            )
            if isinstance(outcome, _GaveUp):
                return _Culprit(index, position, outcome)
            if outcome is _Outcome.RESYNC:
                return outcome
            position = notification.id
            self._advance(position)
        return _Outcome.APPLIED

    def _give_up(
        self, failing: LoggedEvent, position: int | None, failure: _GaveUp
    ) -> bool:
        """Halts before ``failing``, or parks it and moves past it (False: the
        position moved meanwhile, resync)."""
        parked = parked_event(failing.notification)
        if self.policy.on_failure == "stop":
            raise SubscriberHaltedError(
                self.name, parked.position, parked, failure.attempts, failure.error
            )
        log.error(
            "%s parks %s after %s",
            self.name,
            parked,
            _attempts(failure.attempts),
            exc_info=failure.error,
        )
        outcome = self._retrying(
            partial(
                self.subscriber.park,
                parked,
                Failure.of(failure.error),
                expected_position=position,
            )
        )
        if isinstance(outcome, _GaveUp):
            raise SubscriberHaltedError(
                self.name, parked.position, parked, outcome.attempts, outcome.error
            ) from failure.error
        return outcome is _Outcome.APPLIED

    def _process(
        self,
        notifications: Sequence[LoggedEvent],
        position: int | None,
        new_position: int,
    ) -> bool:
        # Decoded once per process, shared with the other runners of the log;
        # an event that cannot be decoded never gets here (see
        # ``_up_to_undecodable``).
        events = [notification.event() for notification in notifications]
        return self.subscriber.process(
            events, expected_position=position, new_position=new_position
        )

    def _retrying(self, attempt: Callable[[], bool]) -> _Outcome | _GaveUp:
        """Runs ``attempt`` (one transaction) until it succeeds, with backoff
        after each failure; gives up after ``policy.attempts`` failures of its
        own. Database errors are retried for as long as they last."""
        failures = 0
        counted = 0
        outage = Outage(f"subscriber {self.name}", self._report)
        while True:
            try:
                done = attempt()
            except Exception as error:
                failures += 1
                if is_transient(error):
                    outage.failed(error)
                    delay = backoff(outage.failures)
                else:
                    counted += 1
                    if counted >= self.policy.attempts:
                        return _GaveUp(error, counted)
                    log.warning("%s: attempt %s failed: %s", self.name, failures, error)
                    self._report("retrying", Failure.of(error).traceback)
                    delay = self.policy.delay(failures)
                if self.stopping.wait(delay):
                    return _Outcome.RESYNC
                continue
            if failures:
                self._report("running")
            return _Outcome.APPLIED if done else _Outcome.RESYNC

    def _report(self, state: str, error: str | None = None) -> None:
        # The database may be what failed; reporting must not make it worse.
        try:
            self.subscriber.report(state, error)
        except Exception as failure:
            if is_transient(failure):
                log.debug("could not record the state of %s: %s", self.name, failure)
            else:
                log.exception("could not record the state of %s", self.name)

    def _advance(self, position: int | None) -> None:
        with self._progress:
            self._position = position
            self._progress.notify_all()


def _up_to_undecodable(
    batch: Sequence[LoggedEvent], topics: frozenset[str]
) -> tuple[Sequence[LoggedEvent], tuple[LoggedEvent, UndecodableEventError] | None]:
    """The events of ``batch`` before the first undecodable one, and that one
    with why. The events a subscriber handles are decoded; of the others, only
    the topic is resolved: one that names no class might be an event it
    handles (renamed, or its class gone), so it is no more skipped than an
    event it handles that does not decode."""
    # Each topic is resolved once per batch, not once per event.
    unknown = {topic for topic in {e.topic for e in batch} if not names_a_class(topic)}
    for index, entry in enumerate(batch):
        if entry.topic in unknown:
            problem = entry.undecodable(decode=False)
        elif entry.topic in topics:
            problem = entry.undecodable(decode=True)
        else:
            continue
        if problem is not None:
            return batch[:index], (entry, problem)
    return batch, None


class Pace:
    """How often a follower of a busy log takes a batch (see
    :class:`~application.config.Batching`). A follower of a quiet log takes
    each event at once."""

    def __init__(self, batching: Batching, stopping: threading.Event) -> None:
        self.batching = batching
        self._stopping = stopping
        self._last_at = -1e9
        self._last_was_full = True
        self._interval = batching.interval_seconds

    def wait_for_turn(self) -> bool:
        """Waits until the next batch may start; True if stopped meanwhile."""
        if self._last_was_full:
            return self._stopping.is_set()
        due = self._last_at + self._interval
        return self._stopping.wait(max(due - time.monotonic(), 0))

    def took(self, events: int) -> None:
        """A batch of ``events`` is starting."""
        self._last_at = time.monotonic()
        self._last_was_full = events >= self.batching.max_events

    def finished(self) -> None:
        """The batch that started last is done."""
        took = time.monotonic() - self._last_at
        self._interval = self.batching.interval_after(took)


class _Following:
    """One stretch of a runner following the log, from a stored position.

    Batches are taken as :class:`~application.config.Batching` says. A batch
    with no event the subscriber handles is not recorded at once: its
    position is recorded with the next batch that has some, or when the log
    goes quiet, or after ``UNRECORDED_SECONDS`` (a resync re-reads those
    events, and handles none of them)."""

    def __init__(
        self,
        runner: SubscriberRunner,
        follower: LogFollower,
        position: int | None,
        outage: Outage,
    ) -> None:
        self.runner = runner
        self.follower = follower
        self.outage = outage
        self.recorded = position
        """The stored position: what the next batch expects."""
        self.read_to = position
        """How far the runner has looked; beyond ``recorded`` only by events
        the subscriber does not handle."""
        self.recorded_at = time.monotonic()
        self.pace = Pace(runner.batching, runner.stopping)
        self.last_heartbeat = time.monotonic()

    def run(self) -> None:
        runner = self.runner
        topics = runner.subscriber.topics
        batching = runner.batching
        while not runner.stopping.is_set():
            if self.pace.wait_for_turn():
                return
            # A database error here is the runner's to wait out (it resumes
            # from the stored position).
            batch = self.follower.batch_after(
                self.read_to,
                limit=batching.max_events,
                timeout=self._patience(),
                stopping=runner.stopping,
            )
            self.outage.over()
            if not self._heartbeat():
                return
            if not batch:
                if self.read_to != self.recorded and not self._record_read():
                    return
                continue
            self.pace.took(len(batch))
            batch, culprit = _up_to_undecodable(batch, topics)
            handled = [entry for entry in batch if entry.topic in topics]
            if culprit is not None:
                if not self._give_up_on(handled, batch, *culprit):
                    return
                continue
            self.read_to = batch[-1].id
            if not handled and not self._unrecorded_too_long():
                continue
            if not runner._deliver(handled, self.recorded, self.read_to):
                return
            self.pace.finished()
            self._recorded()

    def _give_up_on(
        self,
        handled: Sequence[LoggedEvent],
        before: Sequence[LoggedEvent],
        undecodable: LoggedEvent,
        error: UndecodableEventError,
    ) -> bool:
        """Handles the events ``before`` an undecodable one, then gives up on
        it at once (decoding it again would fail again): halts, or parks it.
        False if the runner must resync."""
        runner = self.runner
        if handled:
            self.read_to = before[-1].id
            if not runner._deliver(handled, self.recorded, self.read_to):
                return False
            self._recorded()
        if not runner._give_up(undecodable, self.recorded, _GaveUp(error, 1)):
            return False
        self.read_to = undecodable.id
        self._recorded()
        self.pace.finished()
        return True

    def _patience(self) -> float:
        """How long to wait for events: with a position to record, only until
        the log has been quiet for an interval."""
        if self.read_to != self.recorded:
            return max(self.runner.batching.interval_seconds, 0.001)
        return IDLE_WAIT_SECONDS

    def _unrecorded_too_long(self) -> bool:
        return time.monotonic() - self.recorded_at > UNRECORDED_SECONDS

    def _record_read(self) -> bool:
        """Records the position of events read and not handled."""
        assert self.read_to is not None
        if not self.runner._deliver([], self.recorded, self.read_to):
            return False
        self._recorded()
        return True

    def _recorded(self) -> None:
        self.recorded = self.read_to
        self.recorded_at = time.monotonic()
        self.runner._advance(self.recorded)

    def _heartbeat(self) -> bool:
        """Reports the runner alive now and then; False if it lost its lock."""
        if time.monotonic() - self.last_heartbeat <= HEARTBEAT_SECONDS:
            return True
        if not self.runner.leadership.is_held():
            return False
        self.runner.subscriber.report("running")
        self.last_heartbeat = time.monotonic()
        return True
