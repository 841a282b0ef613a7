"""A subscriber's record of an event it gave up on, until someone deals with it.

When a handler keeps failing on one event and its subscriber's policy is to
*park* it, the subscriber records the event's position, identity and the error,
and moves past it in the same transaction. The dead letter stays *parked* until
someone retries the event (after fixing the fault: the retry and the handler's
effects are one transaction, so it takes effect once) or discards it with a
reason.

A process manager's dead letters are :class:`DeadLetter` aggregates stored in
its own service's log, where its tracking lives; a read model's are rows of the
view store. Callers see both as :class:`DeadLetterView`.
"""

from __future__ import annotations

import traceback as tracebacks
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import DeadLetterStateError
from domain.values import ID_NAMESPACE, parse_text


class DeadLetterStatus(StrEnum):
    PARKED = "parked"
    RETRIED = "retried"
    DISCARDED = "discarded"


def dead_letter_id(subscriber: str, position: int) -> UUID:
    """One id per (subscriber, position): the same event cannot be parked twice."""
    return uuid5(ID_NAMESPACE, f"dead-letter/{subscriber}/{position}")


@dataclass(frozen=True)
class Failure:
    """What went wrong, as text that can be stored and shown."""

    error: str
    """One line: the exception's type and message."""
    traceback: str

    @classmethod
    def of(cls, error: BaseException) -> Failure:
        return cls(
            error=f"{type(error).__name__}: {error}",
            traceback="".join(tracebacks.format_exception(error)),
        )


@dataclass(frozen=True)
class ParkedEvent:
    """Where the event a subscriber gave up on is, and what it is."""

    position: int
    """Its notification id in the log of the service it came from."""
    topic: str
    originator_id: UUID
    originator_version: int

    def __str__(self) -> str:
        return (
            f"{event_type_of(self.topic)} {self.originator_id}:"
            f"{self.originator_version} at position {self.position}"
        )


def event_type_of(topic: str) -> str:
    """``domain.order:Order.Placed`` -> ``Order.Placed``."""
    return topic.partition(":")[2] or topic


@dataclass(frozen=True)
class DeadLetterView:
    """One parked event, as ``shop.dead_letters`` and the CLI show it."""

    dead_letter_id: UUID
    subscriber: str
    service: str
    """The service whose log holds the event."""
    position: int
    event_topic: str
    originator_id: UUID
    originator_version: int
    error: str
    """The latest failure: the parking one, or that of a retry that failed."""
    traceback: str
    parked_at: datetime
    status: DeadLetterStatus
    resolved_at: datetime | None
    discard_reason: str | None

    @property
    def event_type(self) -> str:
        return event_type_of(self.event_topic)


class DeadLetter(Aggregate):
    """An event a process manager parked, and what became of it."""

    class Parked(Aggregate.Created):
        subscriber: str
        service: str
        position: int
        event_topic: str
        event_originator_id: UUID
        event_originator_version: int
        error: str
        traceback: str

    class RetryFailed(Aggregate.Event):
        error: str
        traceback: str

    class Retried(Aggregate.Event):
        pass

    class Discarded(Aggregate.Event):
        reason: str

    @staticmethod
    def create_id(subscriber: str, position: int) -> UUID:
        return dead_letter_id(subscriber, position)

    @classmethod
    def park(
        cls, subscriber: str, service: str, parked: ParkedEvent, failure: Failure
    ) -> DeadLetter:
        return cls(
            subscriber=subscriber,
            service=service,
            position=parked.position,
            event_topic=parked.topic,
            event_originator_id=parked.originator_id,
            event_originator_version=parked.originator_version,
            error=failure.error,
            traceback=failure.traceback,
        )

    @event(Parked)
    def __init__(
        self,
        *,
        subscriber: str,
        service: str,
        position: int,
        event_topic: str,
        event_originator_id: UUID,
        event_originator_version: int,
        error: str,
        traceback: str,
    ) -> None:
        self.subscriber = subscriber
        self.service = service
        self.position = position
        self.event_topic = event_topic
        self.event_originator_id = event_originator_id
        self.event_originator_version = event_originator_version
        self.error = error
        self.traceback = traceback
        self._status: str = DeadLetterStatus.PARKED
        self.discard_reason: str | None = None

    @property
    def status(self) -> DeadLetterStatus:
        return DeadLetterStatus(self._status)

    def fail_retry(self, failure: Failure) -> None:
        """A retry failed again: it stays parked, with the new error."""
        self._check("record a failed retry of")
        self._fail_retry(error=failure.error, traceback=failure.traceback)

    def mark_retried(self) -> None:
        self._check("retry")
        self._mark_retried()

    def discard(self, reason: str) -> None:
        self._check("discard")
        self._discard(reason=parse_text(reason, "reason"))

    def _check(self, action: str) -> None:
        if self.status != DeadLetterStatus.PARKED:
            raise DeadLetterStateError(self.id, action, f"it is {self.status}")

    @event(RetryFailed)
    def _fail_retry(self, error: str, traceback: str) -> None:
        self.error = error
        self.traceback = traceback

    @event(Retried)
    def _mark_retried(self) -> None:
        self._status = DeadLetterStatus.RETRIED

    @event(Discarded)
    def _discard(self, reason: str) -> None:
        self._status = DeadLetterStatus.DISCARDED
        self.discard_reason = reason

    def view(self) -> DeadLetterView:
        resolved = self.status != DeadLetterStatus.PARKED
        return DeadLetterView(
            dead_letter_id=self.id,
            subscriber=self.subscriber,
            service=self.service,
            position=self.position,
            event_topic=self.event_topic,
            originator_id=self.event_originator_id,
            originator_version=self.event_originator_version,
            error=self.error,
            traceback=self.traceback,
            parked_at=self.created_on,
            status=self.status,
            # Nothing happens to a dead letter after it is resolved.
            resolved_at=self.modified_on if resolved else None,
            discard_reason=self.discard_reason,
        )
