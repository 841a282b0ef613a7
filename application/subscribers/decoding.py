"""Decoding a stored event, and saying why one cannot be decoded.

An event whose topic names no class, or whose state does not decode into that
class, is *undecodable*: the runners give up on it (halting or parking) rather
than take it for one their subscriber does not handle, and rebuilds and
``eventshop status`` name it. Shared by the log reader
(``application.subscribers.shared_log``), the runners and rebuilds.
"""

from __future__ import annotations

from collections.abc import Callable

from eventsourcing.persistence import Notification
from eventsourcing.utils import resolve_topic

Decode = Callable[[Notification], object]


class UndecodableEventError(ValueError):
    """A stored event that cannot be decoded: its topic names no class, or its
    state does not decode into that class (not JSON, fields missing)."""

    def __init__(self, service: str, notification: Notification, reason: str) -> None:
        self.service = service
        self.position = notification.id
        self.topic = notification.topic
        self.reason = reason
        super().__init__(
            f"the event at {service} position {notification.id} cannot be "
            f"decoded: {reason}"
        )


def undecodable(
    service: str, notification: Notification, decode: Decode | None
) -> UndecodableEventError | None:
    """Why ``notification`` cannot be decoded, or None if it can: its topic
    must name a class and, given ``decode``, its state must decode."""
    problem = _unknown_topic(service, notification)
    if problem is not None or decode is None:
        return problem
    try:
        decoded(service, notification, decode)
    except UndecodableEventError as problem:
        return problem
    return None


def decoded(service: str, notification: Notification, decode: Decode) -> object:
    """The event ``notification`` holds; raises :class:`UndecodableEventError`
    when its topic names no class or its state does not decode."""
    problem = _unknown_topic(service, notification)
    if problem is not None:
        raise problem
    try:
        return decode(notification)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        raise UndecodableEventError(service, notification, reason) from error


def _unknown_topic(
    service: str, notification: Notification
) -> UndecodableEventError | None:
    if names_a_class(notification.topic):
        return None
    reason = f"its topic {notification.topic!r} names no class"
    return UndecodableEventError(service, notification, reason)


_class_topics: set[str] = set()


def names_a_class(topic: str) -> bool:
    """Whether ``topic`` resolves to a class (as the mapper resolves it)."""
    if topic in _class_topics:
        return True
    try:
        resolved = resolve_topic(topic)
    except Exception:
        # Not remembered: a class registered later under it will be found.
        return False
    if not isinstance(resolved, type):
        return False
    _class_topics.add(topic)
    return True
