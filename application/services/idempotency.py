"""Commands given an idempotency key: run once, answered from a receipt after.

:func:`run_once` is what a caller wraps a command in. It looks for the
receipt of the key in the service the command writes to: one that still holds
answers the try (after checking it records the same command and arguments);
otherwise the command runs with the receipt *pending*, and the service's
``save`` (see :meth:`ShopService.save`) stores the receipt beside the
command's events, in one transaction. So a command and its receipt are stored
together or not at all, whatever process dies when.

Two tries racing with one key both find no receipt and both run; the store
lets only one save the receipt (its first version, or the next one of a
renewed receipt). The other's save is refused as a conflict, or its command
is refused for a business reason because the first one's effect is already
there (a cart already checked out); either way it then finds the receipt and
answers from it, having written nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate

from domain.command_receipt import (
    CommandCall,
    CommandReceipt,
    parse_idempotency_key,
    receipt_id,
)
from domain.errors import ShopError

R = TypeVar("R")


class ReceiptTakenError(Exception):
    """Another try with the same key saved its receipt first (internal: run_once
    answers the caller from that receipt)."""


@dataclass(frozen=True)
class KeyedCommand(Generic[R]):
    """A command as :func:`run_once` runs it: its ``name`` and ``arguments``
    (what tells two commands apart), ``run`` (which saves in one service and
    returns the result) and ``answer`` (the result again, from the receipt the
    first try left)."""

    name: str
    arguments: dict[str, object]
    run: Callable[[], R]
    answer: Callable[[CommandReceipt], R]


@dataclass
class PendingReceipt:
    """The receipt a keyed command will save with its events."""

    service: str
    key: str
    call: CommandCall
    expires_at: datetime
    based_on: int
    """The version of the key's receipt when the command started: 0 for none
    yet, or that of an expired one it renews."""
    saved: bool = field(default=False)


_pending: ContextVar[PendingReceipt | None] = ContextVar(
    "eventshop_pending_receipt", default=None
)


def pending_receipt(service: str) -> PendingReceipt | None:
    """The receipt a command running now should save with its events in
    ``service``, if it was given a key and has not saved it yet."""
    pending = _pending.get()
    if pending is None or pending.saved or pending.service != service:
        return None
    return pending


def stored_receipt(app: Application[UUID], key: str) -> CommandReceipt | None:
    """The receipt of ``key`` in ``app``'s store, if any."""
    try:
        receipt: object = app.repository.get(receipt_id(app.name, key))
    except AggregateNotFoundError:
        return None
    assert isinstance(receipt, CommandReceipt)
    return receipt


def receipt_to_save(
    app: Application[UUID], pending: PendingReceipt, objs: tuple[Any, ...]
) -> CommandReceipt:
    """The receipt ``pending`` becomes when the command saves ``objs``: a new
    one, or the expired one of its key renewed. Raises ``ReceiptTakenError``
    if another try with the key stored a receipt since the command started
    (renewing that one would apply the command twice)."""
    saved_ids = [obj.id for obj in objs if isinstance(obj, Aggregate)]
    if pending.based_on == 0:
        # No read needed: if another try stored the key's first receipt
        # meanwhile, the store refuses this one as a conflict.
        return CommandReceipt.issue(
            app.name, pending.key, pending.call, saved_ids, pending.expires_at
        )
    # Read again, not the copy the command started from: a save refused for
    # another aggregate's sake has already moved that copy's version on.
    expired = stored_receipt(app, pending.key)
    if expired is None or expired.version != pending.based_on:
        raise ReceiptTakenError(pending.key)
    expired.renew(pending.call, saved_ids, pending.expires_at)
    return expired


def taken_meanwhile(app: Application[UUID], receipt: CommandReceipt) -> bool:
    """After a save of ``receipt`` was refused: whether another try stored a
    receipt for the same key first (and not only another aggregate's event)."""
    stored = stored_receipt(app, receipt.key)
    # Ours was not stored, so its version is one past what was stored when we read.
    return stored is not None and stored.version >= receipt.version


@contextmanager
def _receipt_pending(pending: PendingReceipt) -> Iterator[None]:
    token = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(token)


def run_once(
    app: Application[UUID],
    key: str | None,
    command: KeyedCommand[R],
    *,
    now: datetime,
    lasting: timedelta,
) -> R:
    """Runs ``command`` (which saves in ``app``) once per ``key``.

    Without a key it just runs. With one, a try of the same command with the
    same arguments while the key's receipt holds (for ``lasting`` after the
    first) writes nothing and returns the first try's result, as the
    command's ``answer`` tells it from the receipt; another command or other
    arguments are refused with an ``IdempotencyKeyReusedError``."""
    if key is None:
        return command.run()
    key = parse_idempotency_key(key)
    call = CommandCall.of(key, command.name, command.arguments)
    earlier = stored_receipt(app, key)
    if earlier is not None and earlier.holds_at(now):
        earlier.check_repeats(call)
        return command.answer(earlier)
    unchanged = 0 if earlier is None else earlier.version
    pending = PendingReceipt(
        app.name, key, call, expires_at=now + lasting, based_on=unchanged
    )
    try:
        with _receipt_pending(pending):
            return command.run()
    except (ReceiptTakenError, ShopError):
        # A racing try with the same key may have won: then its result is ours.
        winner = stored_receipt(app, key)
        if winner is None or winner.version == unchanged:
            raise
        winner.check_repeats(call)
        return command.answer(winner)
