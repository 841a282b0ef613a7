"""Hosting subscribers: a thread per subscriber that follows a service's log.

The same runner serves every way of hosting:

* embedded: ``Shop()`` starts one runner per subscriber in a helper process
  (or, on request, in its own threads);
* distributed: ``eventshop worker NAME`` runs runners in a process of its own.

Wherever it runs, one instance per subscriber is active, the others stand by
(see ``application.subscribers.leadership``); the thread, the lead and the
waiting out of database outages are the lifecycle every background worker
shares (``application.subscribers.background``).

A runner reads its position, follows the log after it through the process's
shared reader of that log (``application.subscribers.shared_log``: one read and one
decoding of each page for every runner of the process) and hands each batch to
the subscriber, which writes the batch's effects and the new position in one
transaction. Batches are paced while the log is busy (see
:class:`~application.config.Batching`). Whatever happens (a crash, a lost
lock, another instance racing it) the stored position is the truth it
restarts from.

When a handler raises, the runner follows the subscriber's
:class:`~application.config.FaultPolicy` (``application.subscribers
.fault_handling``): retries, then halting before the event that keeps failing
or parking it as a dead letter. An event that cannot be decoded (its topic
names no class, or its state does not decode) is given up on in the same way,
at once: no retry would decode it. It is never taken for one the subscriber
does not handle, unless its topic names a class the subscriber does not
handle.

When the database goes away (a lost connection, a restart, an outage, a busy
SQLite file: see ``application.persistence.transient``) wherever the runner
touches it (its position, the log, its lock, its reports), the runner waits
with a bounded backoff, reporting ``waiting`` when the database lets it, and
resumes from its stored position; such errors never count against the fault
policy's attempts.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

from eventsourcing.application import Application

from application.config import Batching, FaultPolicy
from application.persistence.transient import Outage, is_transient
from application.subscribers.background import BackgroundWorker
from application.subscribers.decoding import UndecodableEventError, names_a_class
from application.subscribers.fault_handling import (
    Delivery,
    GaveUp,
    PositionBeyondLogError,
    SubscriberHaltedError,
)
from application.subscribers.leadership import Leadership
from application.subscribers.pace import Pace
from application.subscribers.shared_log import (
    FollowedLog,
    Follower,
    LoggedEvent,
    shared_log,
)
from application.subscribers.subscriber import Subscriber

log = logging.getLogger(__name__)

# How long an idle runner waits for new events before it heartbeats and checks
# whether it should stop.
IDLE_WAIT_SECONDS = 0.5
# A batch with nothing the subscriber handles only moves its position: that
# move waits for the next batch it handles, for the log to go quiet, or for
# this long, so that a busy log of events it ignores costs it no transactions.
UNRECORDED_SECONDS = 1.0


class SubscriberRunner(BackgroundWorker):
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
        log: FollowedLog | None = None,
    ) -> None:
        # Reports "waiting" (and the reason) while it waits, "running" once
        # it reads the log again.
        super().__init__(
            subscriber.name,
            thread_name=f"subscriber {subscriber.name}",
            leadership=leadership,
            outage=Outage(f"subscriber {subscriber.name}", self._report),
        )
        self.subscriber = subscriber
        self.service = service
        self.policy = policy or FaultPolicy()
        self.batching = batching or Batching()
        self.log: FollowedLog = log or shared_log(service)
        """Where it reads the log: by default the log itself, shared with the
        other runners of this process that follow the same service."""
        self.delivery = Delivery(
            subscriber, self.policy, self.stopping, self._report, self._advance
        )
        self._position: int | None = None
        self._progress = threading.Condition()

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

    # -- its part of the lifecycle -------------------------------------------

    def _standing_by(self) -> None:
        # Not through ``_report``: a database error here is waited out (and
        # reported) like any other of the lifecycle's.
        self.subscriber.report("standby")

    def _took_lead(self) -> None:
        self.subscriber.report("running")

    def _heartbeat(self) -> None:
        self.subscriber.report("running")

    def _interrupt(self) -> None:
        self.log.interrupt()
        self._wake_waiters()

    def _stopped(self) -> None:
        self._report("stopped")

    def _failed(self, error: BaseException) -> None:
        if isinstance(error, SubscriberHaltedError):
            log.error("%s", error)
            self._report("halted", error.report())
        else:
            log.exception("subscriber %s failed", self.name, exc_info=error)
            self._report("failed", "".join(traceback.format_exception(error)))

    def _ended(self) -> None:
        self.log.close()
        self._wake_waiters()

    def _work(self) -> None:
        """Follows the log until stopped, the lock is lost, or the stored
        position turns out to have moved under us (then it resyncs)."""
        position = self.subscriber.position()
        self._refuse_a_position_beyond_the_log(position)
        self._advance(position)
        with self.log.follow() as follower:
            _Following(self, follower, position).run()

    def _refuse_a_position_beyond_the_log(self, position: int | None) -> None:
        """Halts, rather than wait for a log to grow past where it stands, if
        the subscriber stands past the log's head (which only a log other than
        the one it followed can be behind)."""
        head = self.log.head()
        if position is not None and head is not None and position > head:
            error = PositionBeyondLogError(
                self.name, self.subscriber.follows, position, head
            )
            raise SubscriberHaltedError(self.name, position, None, 1, error)

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

    def _wake_waiters(self) -> None:
        with self._progress:
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
        follower: Follower,
        position: int | None,
    ) -> None:
        self.runner = runner
        self.follower = follower
        self.outage = runner.outage
        self.deliver = runner.delivery.deliver
        self.recorded = position
        """The stored position: what the next batch expects."""
        self.read_to = position
        """How far the runner has looked; beyond ``recorded`` only by events
        the subscriber does not handle."""
        self.recorded_at = time.monotonic()
        self.pace = Pace(runner.batching, runner.stopping)

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
            # Reports the runner alive now and then; False if it lost its lock.
            if not runner.still_leading():
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
            if not self.deliver(handled, self.recorded, self.read_to):
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
            if not self.deliver(handled, self.recorded, self.read_to):
                return False
            self._recorded()
        if not runner.delivery.give_up(undecodable, self.recorded, GaveUp(error, 1)):
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
        if not self.deliver([], self.recorded, self.read_to):
            return False
        self._recorded()
        return True

    def _recorded(self) -> None:
        self.recorded = self.read_to
        self.recorded_at = time.monotonic()
        self.runner._advance(self.recorded)
        if self.recorded is not None:
            self.follower.handled_up_to(self.recorded)
