"""A service's receipt for a command given with an idempotency key.

A client that retries a command (after a timeout, say) cannot know whether its
first try was applied. Given the same idempotency key, the retry finds the
receipt the first try left and returns that try's result instead of running
again. The receipt is saved with the command's own events, in the same
transaction of the same service, so a crash can never leave one without the
other.

A receipt holds no arguments, only a fingerprint of them (so a key reused for
a different command is told apart), the ids of the aggregates the command
saved (from which its result is told again), and until when it holds. After
that, the key may be used again: the receipt is renewed for the new command.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import (
    IdempotencyKeyReusedError,
    InvalidIdempotencyKeyError,
    InvalidInputError,
)
from domain.values import ID_NAMESPACE

MAX_IDEMPOTENCY_KEY_LENGTH = 200
_VISIBLE_ASCII = frozenset(chr(code) for code in range(0x21, 0x7F))


def parse_idempotency_key(value: object) -> str:
    """1 to 200 visible ASCII characters (what an HTTP header or a UUID's text
    holds: no spaces, no control characters)."""
    if not isinstance(value, str):
        raise InvalidIdempotencyKeyError(value, "must be a string")
    if not value:
        raise InvalidIdempotencyKeyError(value, "must not be empty")
    if len(value) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidIdempotencyKeyError(
            value, f"longer than {MAX_IDEMPOTENCY_KEY_LENGTH}"
        )
    if not _VISIBLE_ASCII.issuperset(value):
        raise InvalidIdempotencyKeyError(
            value, "use visible ASCII characters only (no spaces or controls)"
        )
    return value


def receipt_id(service: str, key: str) -> UUID:
    """One receipt per service and key: two tries of a command meet on it."""
    return uuid5(ID_NAMESPACE, f"command-receipt/{service}/{key}")


@dataclass(frozen=True)
class CommandCall:
    """A command as a receipt tells it apart: its name and a digest of its
    arguments (their JSON, with the key mixed in, so the digest of one key's
    arguments says nothing about another's)."""

    command: str
    fingerprint: str

    @classmethod
    def of(cls, key: str, command: str, arguments: dict[str, object]) -> CommandCall:
        """Raises an ``InvalidInputError`` naming an argument no command takes
        (nested past what JSON encodes, an int of more digits than Python
        writes out), before anything is looked up or written."""
        digest = hashlib.sha256(json.dumps([key, command]).encode("ascii"))
        for name in sorted(arguments):
            digest.update(b"\x00" + _argument_text(name, arguments[name]))
        return cls(command, digest.hexdigest())


def _argument_text(name: str, value: object) -> bytes:
    try:
        text = json.dumps([name, value], default=str, ensure_ascii=True)
    except (RecursionError, ValueError, TypeError):
        raise InvalidInputError(name, value, "is not a value a command takes") from None
    return text.encode("ascii")


class CommandReceipt(Aggregate):
    """What a command given with an idempotency key did, and until when it
    stands for every later try with that key."""

    class Issued(Aggregate.Created):
        service: str
        key: str
        command: str
        fingerprint: str
        saved_ids: list[UUID]
        expires_at: datetime

    class Renewed(Aggregate.Event):
        command: str
        fingerprint: str
        saved_ids: list[UUID]
        expires_at: datetime

    @staticmethod
    def create_id(service: str, key: str) -> UUID:
        return receipt_id(service, key)

    @classmethod
    def issue(
        cls,
        service: str,
        key: str,
        call: CommandCall,
        saved_ids: list[UUID],
        expires_at: datetime,
    ) -> CommandReceipt:
        return cls(
            service=service,
            key=key,
            command=call.command,
            fingerprint=call.fingerprint,
            saved_ids=saved_ids,
            expires_at=expires_at,
        )

    @event(Issued)
    def __init__(
        self,
        *,
        service: str,
        key: str,
        command: str,
        fingerprint: str,
        saved_ids: list[UUID],
        expires_at: datetime,
    ) -> None:
        self.service = service
        self.key = key
        self.command = command
        self.fingerprint = fingerprint
        self.saved_ids = list(saved_ids)
        self.expires_at = expires_at

    def holds_at(self, now: datetime) -> bool:
        """Whether the receipt still stands for tries with its key."""
        return now < self.expires_at

    def check_repeats(self, call: CommandCall) -> None:
        """Raises ``IdempotencyKeyReusedError`` unless ``call`` is the command,
        with the same arguments, that this receipt records."""
        if call != CommandCall(self.command, self.fingerprint):
            raise IdempotencyKeyReusedError(self.key, self.command, call.command)

    def renew(
        self, call: CommandCall, saved_ids: list[UUID], expires_at: datetime
    ) -> None:
        """The key, expired, is used again: the receipt now stands for this call."""
        self._renew(
            command=call.command,
            fingerprint=call.fingerprint,
            saved_ids=saved_ids,
            expires_at=expires_at,
        )

    @event(Renewed)
    def _renew(
        self,
        command: str,
        fingerprint: str,
        saved_ids: list[UUID],
        expires_at: datetime,
    ) -> None:
        self.command = command
        self.fingerprint = fingerprint
        self.saved_ids = list(saved_ids)
        self.expires_at = expires_at
