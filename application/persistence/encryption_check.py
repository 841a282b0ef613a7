"""The check a service makes when it starts: do the cipher keys it was given
read what it stored?

Reading every stored event would make each start as slow as a rebuild, so it
samples: the first and the newest event and, wherever two sampled events name
different keys, the event half-way between them, until each run of events
under one key has been sampled (a log whose keys were rotated one after the
other has a few such runs). So a wrong current key, an old key dropped, no key
over encrypted events or a key over plain ones is a :class:`CipherKeyError`
naming the service and position, in one line, before anything is read as
garbage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import Cipher, Notification, StoredEvent

from application.persistence.encryption import (
    CIPHER_KEY_FILE_VARIABLE,
    CIPHER_KEY_VARIABLE,
    CipherKeyError,
    key_id_of,
)

MAX_SAMPLED_EVENTS = 64
"""Enough for dozens of rotations; bounds a start however the keys interleave."""


class NotificationLog(Protocol):
    def max_notification_id(self) -> int | None: ...

    def select_notifications(
        self, start: int | None, limit: int
    ) -> Sequence[Notification]: ...


class AggregateEvents(Protocol):
    def select_events(
        self, originator_id: UUID, *, desc: bool = False, limit: int | None = None
    ) -> Sequence[StoredEvent]: ...


def check_stored_encryption(
    service: str,
    cipher: Cipher | None,
    events: NotificationLog,
    snapshots: AggregateEvents | None,
) -> None:
    """Raises :class:`CipherKeyError` unless ``cipher`` (None: no key) reads
    the events ``service`` stored (sampled one per run of a key) and the
    newest snapshot of the newest event's aggregate. An empty store agrees
    with any configuration."""
    head = events.max_notification_id()
    first, newest = _at(events, 1), _at(events, head or 0)
    if first is None or newest is None:
        return
    for notification in sampled_events(events, first, newest):
        _check(
            service, f"the event at position {notification.id}", cipher, notification
        )
    if snapshots is None:
        return
    aggregate_id = UUID(str(newest.originator_id))
    for snapshot in snapshots.select_events(aggregate_id, desc=True, limit=1):
        what = (
            f"the snapshot of {aggregate_id} at version {snapshot.originator_version}"
        )
        _check(service, what, cipher, snapshot)


def sampled_events(
    events: NotificationLog, first: Notification, last: Notification
) -> list[Notification]:
    """``first``, ``last`` and, by halving every stretch whose ends name
    different keys, at least one event of each run of one key between them
    (at most :data:`MAX_SAMPLED_EVENTS` in all), in log order."""
    sampled = {first.id: first, last.id: last}
    stretches = [(first, last)]
    while stretches and len(sampled) < MAX_SAMPLED_EVENTS:
        low, high = stretches.pop()
        if key_id_of(low.state) == key_id_of(high.state) or high.id - low.id < 2:
            continue
        middle = _at(events, (low.id + high.id) // 2)
        if middle is None or middle.id >= high.id:
            continue
        sampled[middle.id] = middle
        stretches += [(low, middle), (middle, high)]
    return [sampled[position] for position in sorted(sampled)]


def _at(events: NotificationLog, position: int) -> Notification | None:
    """The first event at or after ``position`` (positions may have gaps)."""
    if position < 1:
        return None
    found = events.select_notifications(position, 1)
    return found[0] if found else None


def _check(service: str, what: str, cipher: Cipher | None, stored: StoredEvent) -> None:
    problem = _problem_reading(cipher, stored.state)
    if problem is not None:
        raise CipherKeyError(f"{service}: {what} {problem}")


def _problem_reading(cipher: Cipher | None, state: bytes) -> str | None:
    encrypted = key_id_of(state) is not None
    if cipher is None:
        if encrypted:
            return (
                "is encrypted and no cipher key is configured "
                f"(set {CIPHER_KEY_VARIABLE} or {CIPHER_KEY_FILE_VARIABLE})"
            )
        return None
    if not encrypted:
        return (
            "is stored plain but a cipher key is configured (a store written "
            "without encryption stays so: unset the key)"
        )
    try:
        cipher.decrypt(state)
    except ValueError as error:
        # The library's and ours name the problem, never the key.
        return f"cannot be read: {error}"
    return None
