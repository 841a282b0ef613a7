"""``shop.dead_letters``: the events subscribers parked, whoever parked them.

Process managers keep their dead letters in their own service's log, read
models in the view store (see ``domain.dead_letter``); this module shows both
as one list of :class:`~domain.dead_letter.DeadLetterView` and retries or
discards either kind by id. Retrying re-reads the event from the log it came
from and hands it to the subscriber that parked it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.utils import get_topic

from application.persistence.paging import notification_pages
from application.services.process import ProcessService, ProcessSubscriber
from application.subscribers.subscriber import Subscriber
from domain.dead_letter import DeadLetter, DeadLetterStatus, DeadLetterView
from domain.errors import DeadLetterNotFoundError
from domain.values import parse_choice, parse_id, parse_text
from projections.store import ViewStore

DEFAULT_DISCARD_REASON = "discarded on request"

# Notifications read per query while looking for dead letters in a log.
PAGE_SIZE = 500
_STATUSES = tuple(status.value for status in DeadLetterStatus)


class DeadLetters:
    """Lists, retries and discards the dead letters of a shop's subscribers."""

    def __init__(
        self,
        services: Mapping[str, Application[Any]],
        store: ViewStore,
        subscribers: Sequence[Subscriber],
    ) -> None:
        self._services = services
        self._store = store
        self._subscriber_names = tuple(subscriber.name for subscriber in subscribers)
        self._process_managers = {
            subscriber.name: subscriber
            for subscriber in subscribers
            if isinstance(subscriber, ProcessSubscriber)
        }

    def list(
        self,
        subscriber: str | None = None,
        status: DeadLetterStatus | str | None = None,
    ) -> tuple[DeadLetterView, ...]:
        """Every dead letter (of one subscriber, in one status), oldest first.
        Subscriber names are unique across process managers and read models."""
        wanted = (
            None
            if status is None
            else DeadLetterStatus(parse_choice(status, "status", _STATUSES))
        )
        if subscriber is not None:
            parse_choice(subscriber, "subscriber", self._subscriber_names)
        letters = [
            letter
            for letter in (*self._store.dead_letters.all(), *self._in_service_logs())
            if (subscriber is None or letter.subscriber == subscriber)
            and (wanted is None or letter.status == wanted)
        ]
        return tuple(
            sorted(letters, key=lambda letter: (letter.parked_at, letter.position))
        )

    def get(self, dead_letter_id: UUID | str) -> DeadLetterView:
        letter_id = parse_id(dead_letter_id, "dead_letter_id")
        found = self._store.dead_letters.get(letter_id)
        if found is not None:
            return found
        return self._process_dead_letter(letter_id).view()

    def retry(self, dead_letter_id: UUID | str) -> DeadLetterView:
        """Handles the parked event again and marks it retried, in one
        transaction; returns the retried dead letter. Raises
        DeadLetterRetryFailedError (it stays parked, with the new error) if the
        handler fails again, DeadLetterStateError if it is not parked."""
        letter = self.get(dead_letter_id)
        letter_id = letter.dead_letter_id

        def parked_event() -> object:
            return self._event_at(letter.service, letter.position)

        process_manager = self._process_managers.get(letter.subscriber)
        if process_manager is not None:
            process_manager.retry(letter_id, parked_event)
        else:
            self._store.dead_letters.retry(letter_id, parked_event)
        return self.get(letter_id)

    def discard(
        self, dead_letter_id: UUID | str, reason: str = DEFAULT_DISCARD_REASON
    ) -> DeadLetterView:
        """Marks a parked dead letter discarded: its event will not be handled."""
        clean_reason = parse_text(reason, "reason")
        letter = self.get(dead_letter_id)
        process_manager = self._process_managers.get(letter.subscriber)
        if process_manager is not None:
            process_manager.discard(letter.dead_letter_id, clean_reason)
        else:
            self._store.dead_letters.discard(letter.dead_letter_id, clean_reason)
        return self.get(letter.dead_letter_id)

    # -- process managers' dead letters ----------------------------------------

    def _process_services(self) -> tuple[ProcessService[Any, Any], ...]:
        by_name = {
            subscriber.service.name: subscriber.service
            for subscriber in self._process_managers.values()
        }
        return tuple(by_name.values())

    def _in_service_logs(self) -> Iterator[DeadLetterView]:
        """The dead letters stored in the process services' logs."""
        topics = [get_topic(DeadLetter.Parked)]
        for service in self._process_services():
            for page in notification_pages(service.recorder, PAGE_SIZE, topics=topics):
                for notification in page:
                    letter: object = service.repository.get(
                        parse_id(notification.originator_id, "dead_letter_id")
                    )
                    assert isinstance(letter, DeadLetter)
                    yield letter.view()

    def _process_dead_letter(self, dead_letter_id: UUID) -> DeadLetter:
        for service in self._process_services():
            try:
                letter: object = service.repository.get(dead_letter_id)
            except AggregateNotFoundError:
                continue
            if isinstance(letter, DeadLetter):
                return letter
        raise DeadLetterNotFoundError(dead_letter_id)

    def _event_at(self, service: str, position: int) -> object:
        """The event at ``position`` of ``service``'s log."""
        followed = self._services[service]
        notifications = followed.recorder.select_notifications(start=position, limit=1)
        if not notifications or notifications[0].id != position:
            raise LookupError(f"{service}'s log has no event at position {position}")
        return followed.mapper.to_domain_event(notifications[0])
