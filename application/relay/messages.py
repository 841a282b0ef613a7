"""How a stored event travels through JetStream: one stream per service, one
subject per event type, and a message id the broker deduplicates by.

A message carries the notification as stored (its position in the log, the
aggregate's id and version, the topic, the stored state as base64, so that a
follower decodes it with the service's own mapper, upcasting included) and,
readable without decoding, what it was recorded with: when, by whom, in which
user action and caused by what."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from domain.metadata import metadata_of

SUBJECT_PREFIX = "eventshop"
POSITION_HEADER = "Eventshop-Position"
MESSAGE_ID_HEADER = "Nats-Msg-Id"


def stream_name(service: str) -> str:
    """The JetStream stream a service's log is relayed to (``EVENTSHOP_CARTS``)."""
    return f"{SUBJECT_PREFIX.upper()}_{service.upper()}"


def stream_subjects(service: str) -> str:
    """Every subject of a service's stream (``eventshop.carts.>``)."""
    return f"{SUBJECT_PREFIX}.{service.lower()}.>"


def subject(service: str, topic: str) -> str:
    """The subject of an event of ``topic``: ``eventshop.carts.Cart.CheckedOut``
    for ``domain.cart:Cart.CheckedOut`` (the class's qualified name)."""
    return f"{SUBJECT_PREFIX}.{service.lower()}.{topic.rpartition(':')[2]}"


def message_id(service: str, position: int) -> str:
    """What the broker drops a republished duplicate by: ``Carts:42``."""
    return f"{service}:{position}"


@dataclass(frozen=True)
class RelayedEvent:
    """One notification of a service's log, as a JetStream message."""

    service: str
    notification: Notification
    recorded_at: str | None
    """ISO time the event was recorded (its timestamp), if it has one."""
    metadata: dict[str, str | None] | None

    @classmethod
    def of(
        cls, service: str, notification: Notification, event: object | None
    ) -> RelayedEvent:
        """The message of ``notification``, whose decoded event is ``event``
        (None if it does not decode: it travels as stored, without what only
        decoding tells)."""
        recorded = getattr(event, "timestamp", None)
        metadata = None if event is None else metadata_of(event)
        return cls(
            service=service,
            notification=notification,
            recorded_at=None if recorded is None else recorded.isoformat(),
            metadata=None
            if metadata is None
            else {
                "actor": metadata.actor,
                "correlation_id": str(metadata.correlation_id),
                "causation_id": metadata.causation_id,
            },
        )

    @property
    def subject(self) -> str:
        return subject(self.service, self.notification.topic)

    @property
    def headers(self) -> dict[str, str]:
        position = self.notification.id
        return {
            MESSAGE_ID_HEADER: message_id(self.service, position),
            POSITION_HEADER: str(position),
        }

    def payload(self) -> bytes:
        notification = self.notification
        body: dict[str, Any] = {
            "service": self.service,
            "position": notification.id,
            "originator_id": str(notification.originator_id),
            "originator_version": notification.originator_version,
            "topic": notification.topic,
            "recorded_at": self.recorded_at,
            "metadata": self.metadata,
            "state": base64.b64encode(notification.state).decode("ascii"),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_payload(cls, payload: bytes) -> RelayedEvent:
        """The event a message carries (raises ``ValueError`` if it is not one)."""
        try:
            body = json.loads(payload)
            notification = Notification(
                id=int(body["position"]),
                originator_id=UUID(body["originator_id"]),
                originator_version=int(body["originator_version"]),
                topic=str(body["topic"]),
                state=base64.b64decode(body["state"], validate=True),
            )
            return cls(
                service=str(body["service"]),
                notification=notification,
                recorded_at=body.get("recorded_at"),
                metadata=body.get("metadata"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a relayed event: {error}") from error
