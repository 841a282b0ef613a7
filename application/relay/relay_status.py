"""What ``eventshop status`` shows of the broker: how far each service's relay
has published (recorded in the service's own database) against the head of
its log and the end of its stream, and, for each broker-fed subscriber, where
its durable consumer stands in the stream it reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application

from application.relay.broker_feed import consumer_name
from application.relay.jetstream import BrokerUnavailableError, JetStream
from application.relay.messages import stream_name
from application.relay.relay import TRACKING_NAME

NO_STREAM_YET = "no stream yet (its relay makes it)"


@dataclass(frozen=True)
class RelayStatus:
    service: str
    stream: str
    published: int
    """The log position up to which the broker acknowledged (as recorded)."""
    head: int
    """The position of the last event of the service's log."""
    stream_last_sequence: int | None
    """The stream's last sequence number (None: unknown, see ``stream_note``)."""
    stream_note: str | None = None
    """Why the stream's end is unknown: no such stream yet, or no broker."""

    @property
    def lag_events(self) -> int:
        return max(self.head - self.published, 0)


@dataclass(frozen=True)
class FeedStatus:
    subscriber: str
    stream: str
    last_sequence: int | None
    """The stream's last sequence number (None: unknown, see ``error``)."""
    unacknowledged: int | None
    """Messages of the stream its consumer has not acknowledged (None: no
    consumer yet, or unknown)."""
    error: str | None = None

    @property
    def acknowledged(self) -> int | None:
        """The stream sequence up to which its consumer acknowledged. Not the
        broker's ack floor: that reads 0 for a consumer made anew (as each
        runner start makes it, after the stored position) until its first
        acknowledgement."""
        if self.last_sequence is None or self.unacknowledged is None:
            return None
        return max(self.last_sequence - self.unacknowledged, 0)

    @property
    def lag_messages(self) -> int | None:
        if self.last_sequence is None:
            return None
        if self.unacknowledged is None:
            return self.last_sequence
        return self.unacknowledged


def relay_statuses(
    services: Mapping[str, Application[Any]], broker: JetStream | None
) -> list[RelayStatus]:
    """One row per service: its relay's recorded position, its log's head and
    (the broker answering) its stream's last sequence."""
    statuses = []
    for name, service in services.items():
        published = service.factory.tracking_recorder().max_tracking_id(TRACKING_NAME)
        stream = stream_name(name)
        last, note = _stream_end(broker, stream)
        statuses.append(
            RelayStatus(
                service=name,
                stream=stream,
                published=published or 0,
                head=service.recorder.max_notification_id() or 0,
                stream_last_sequence=last,
                stream_note=note,
            )
        )
    return statuses


def feed_statuses(
    fed: Sequence[tuple[str, str]], broker: JetStream
) -> list[FeedStatus]:
    """One row per broker-fed subscriber, given as (its name, the service it
    follows): the stream's end and its consumer's acknowledgements."""
    statuses = []
    for subscriber, service in fed:
        stream = stream_name(service)
        try:
            state = broker.stream_state(stream)
            consumer = (
                None
                if state is None
                else broker.consumer_state(stream, consumer_name(subscriber))
            )
        except BrokerUnavailableError as error:
            statuses.append(FeedStatus(subscriber, stream, None, None, str(error)))
            continue
        statuses.append(
            FeedStatus(
                subscriber,
                stream,
                0 if state is None else state.last_sequence,
                None if consumer is None else consumer.unacknowledged,
                None if state is not None else NO_STREAM_YET,
            )
        )
    return statuses


def _stream_end(broker: JetStream | None, stream: str) -> tuple[int | None, str | None]:
    """The stream's last sequence number, or why it is not known."""
    if broker is None:
        return None, "no broker given (--nats)"
    try:
        state = broker.stream_state(stream)
    except BrokerUnavailableError:
        return None, "broker unreachable"
    if state is None:
        return None, NO_STREAM_YET
    return state.last_sequence, None
