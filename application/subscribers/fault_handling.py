"""How a runner delivers a batch to its subscriber under its fault policy,
and halts or parks the event it gives up on.

When a handler raises, the runner follows the subscriber's
:class:`~application.config.FaultPolicy`: it retries the batch with backoff
(every attempt is a transaction of its own, so a failed one leaves nothing
behind), then narrows the failure down to one event by trying the batch's
events one at a time, and gives up on that event by halting before it
(``stop``) or by parking it as a dead letter while moving past it, in one
transaction (``park``). An event that cannot be decoded is given up on in the
same way, at once (see ``application.subscribers.runner``).

Database errors (see ``application.persistence.transient``) are retried for
as long as they last and never count against the policy's attempts.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from eventsourcing.persistence import Notification

from application.config import FaultPolicy
from application.persistence.budget import backoff
from application.persistence.transient import Outage, Report, is_transient
from application.subscribers.shared_log import LoggedEvent
from application.subscribers.subscriber import Subscriber
from domain.dead_letter import Failure, ParkedEvent

log = logging.getLogger(__name__)


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


class PositionBeyondLogError(RuntimeError):
    """A subscriber's stored position is past the head of the log it follows:
    the log is not the one it was following (its database was replaced or
    reset), and following it would silently skip everything up to there."""

    def __init__(self, subscriber: str, follows: str, position: int, head: int):
        self.subscriber = subscriber
        self.follows = follows
        self.position = position
        self.head = head
        super().__init__(
            f"{subscriber} is at position {position} of the {follows} log, "
            f"whose head is {head}: the log is not the one it followed "
            "(was its database replaced?)"
        )


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


class Outcome(enum.Enum):
    APPLIED = "applied"
    RESYNC = "resync"
    """The stored position moved under us, or the runner is stopping."""


@dataclass(frozen=True)
class GaveUp:
    """An attempt that kept failing with errors of its own."""

    error: BaseException
    attempts: int


@dataclass(frozen=True)
class _Culprit:
    """The first event of a batch that fails on its own."""

    index: int
    position: int | None
    """The position after the events before it, which were applied."""
    failure: GaveUp


class Delivery:
    """Hands batches to ``subscriber`` as ``policy`` says, for a runner that
    reports through ``report`` (which must not raise) and records how far it
    got through ``advance``."""

    def __init__(
        self,
        subscriber: Subscriber,
        policy: FaultPolicy,
        stopping: threading.Event,
        report: Report,
        advance: Callable[[int | None], None],
    ) -> None:
        self.subscriber = subscriber
        self.name = subscriber.name
        self.policy = policy
        self._stopping = stopping
        self._report = report
        self._advance = advance

    def deliver(
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
            if outcome is Outcome.APPLIED:
                return True
            if outcome is Outcome.RESYNC:
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
                if found is Outcome.RESYNC:
                    return False
                if found is Outcome.APPLIED:
                    # The batch failed as a whole but not event by event.
                    position = pending[-1].id
                    pending = []
                    continue
                culprit = found
            failing = pending[culprit.index]
            if not self.give_up(failing, culprit.position, culprit.failure):
                return False
            position = failing.id
            self._advance(position)
            pending = pending[culprit.index + 1 :]
        return True

    def _one_at_a_time(
        self, notifications: Sequence[LoggedEvent], position: int | None
    ) -> Outcome | _Culprit:
        """Applies the events one transaction each, up to the first that keeps
        failing on its own."""
        for index, notification in enumerate(notifications):
            outcome = self._retrying(
                partial(self._process, [notification], position, notification.id)
            )
            if isinstance(outcome, GaveUp):
                return _Culprit(index, position, outcome)
            if outcome is Outcome.RESYNC:
                return outcome
            position = notification.id
            self._advance(position)
        return Outcome.APPLIED

    def give_up(
        self, failing: LoggedEvent, position: int | None, failure: GaveUp
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
        if isinstance(outcome, GaveUp):
            raise SubscriberHaltedError(
                self.name, parked.position, parked, outcome.attempts, outcome.error
            ) from failure.error
        return outcome is Outcome.APPLIED

    def _process(
        self,
        notifications: Sequence[LoggedEvent],
        position: int | None,
        new_position: int,
    ) -> bool:
        # Decoded once per process, shared with the other runners of the log;
        # an event that cannot be decoded never gets here (see the runner's
        # ``_up_to_undecodable``).
        events = [notification.event() for notification in notifications]
        return self.subscriber.process(
            events, expected_position=position, new_position=new_position
        )

    def _retrying(self, attempt: Callable[[], bool]) -> Outcome | GaveUp:
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
                        return GaveUp(error, counted)
                    log.warning("%s: attempt %s failed: %s", self.name, failures, error)
                    self._report("retrying", Failure.of(error).traceback)
                    delay = self.policy.delay(failures)
                if self._stopping.wait(delay):
                    return Outcome.RESYNC
                continue
            if failures:
                self._report("running", None)
            return Outcome.APPLIED if done else Outcome.RESYNC
