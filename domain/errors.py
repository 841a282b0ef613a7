"""Every refusal eventshop can give, as a small hierarchy of typed errors.

Callers catch a branch (``InvalidInputError``, ``NotFoundError``, ``StateError``)
or a leaf; each error keeps the ids and values involved as attributes so that a
caller never has to parse a message.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID


class ShopError(Exception):
    """Base of every error eventshop raises on purpose."""


# -- bad input ---------------------------------------------------------------

# Shows a bad value in a message in bounded time and length, whatever it is:
# a list nested 100,000 deep, a 10 MB string, an int of a million digits.
_SHORT = reprlib.Repr()
_SHORT.maxlevel = 3
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 60


def _shown(value: object) -> str:
    try:
        shown = _SHORT.repr(value)
    except (ValueError, RecursionError):
        # An int past Python's limit of digits for text (ValueError), or an
        # object whose own repr recurses without end.
        shown = f"<{type(value).__name__}>"
    return shown if len(shown) <= 60 else shown[:57] + "..."


class InvalidInputError(ShopError, ValueError):
    """A command argument is malformed; nothing was written."""

    def __init__(self, field: str, value: object, problem: str) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        super().__init__(f"invalid {field} {_shown(value)}: {problem}")


class InvalidQuantityError(InvalidInputError):
    """A quantity is not a whole number in the allowed range."""


class InvalidPriceError(InvalidInputError):
    """A price is not a finite, positive amount with at most two decimals."""


class InvalidSkuError(InvalidInputError):
    """A SKU is empty, too long or has characters outside the allowed set."""


class InvalidTextError(InvalidInputError):
    """A name, customer id, reason or actor is blank, too long, or holds a
    control character or a lone surrogate."""


class InvalidIdError(InvalidInputError):
    """An id is not a UUID."""


class InvalidEmailError(InvalidInputError):
    """An e-mail address is blank, too long, or not of the form local@domain."""


class InvalidIdempotencyKeyError(InvalidInputError):
    """An idempotency key is not 1 to 200 visible ASCII characters."""

    def __init__(self, value: object, problem: str) -> None:
        super().__init__("idempotency_key", value, problem)


# -- unknown ids -------------------------------------------------------------


class NotFoundError(ShopError, LookupError):
    """The aggregate a command names does not exist."""


class CartNotFoundError(NotFoundError):
    """No cart has this id."""

    def __init__(self, cart_id: UUID) -> None:
        self.cart_id = cart_id
        super().__init__(f"cart {cart_id} not found")


class OrderNotFoundError(NotFoundError):
    """No order has this id."""

    def __init__(self, order_id: UUID) -> None:
        self.order_id = order_id
        super().__init__(f"order {order_id} not found")


class ProductNotFoundError(NotFoundError):
    """No product is registered under this SKU."""

    def __init__(self, sku: str) -> None:
        self.sku = sku
        super().__init__(f"product {sku!r} not found")


class ItemNotInCartError(NotFoundError):
    """The cart has no line for this SKU."""

    def __init__(self, cart_id: UUID, sku: str) -> None:
        self.cart_id = cart_id
        self.sku = sku
        super().__init__(f"cart {cart_id} has no line for {sku!r}")


class ReservationNotFoundError(NotFoundError):
    """The SKU holds no reservation for this order."""

    def __init__(self, sku: str, order_id: UUID) -> None:
        self.sku = sku
        self.order_id = order_id
        super().__init__(f"{sku!r} holds no reservation for order {order_id}")


# -- commands refused in the aggregate's current state -----------------------


class StateError(ShopError):
    """The command is not allowed in the aggregate's current state."""


class ProductAlreadyRegisteredError(StateError):
    """A product with this SKU is already registered."""

    def __init__(self, sku: str) -> None:
        self.sku = sku
        super().__init__(f"product {sku!r} is already registered")


class CartClosedError(StateError):
    """The cart was checked out or abandoned and can no longer change."""

    def __init__(self, cart_id: UUID, status: str) -> None:
        self.cart_id = cart_id
        self.status = status
        super().__init__(f"cart {cart_id} is {status} and can no longer change")


class EmptyCartError(StateError):
    """An empty cart cannot be checked out."""

    def __init__(self, cart_id: UUID) -> None:
        self.cart_id = cart_id
        super().__init__(f"cart {cart_id} is empty")


class CustomerForgottenError(StateError):
    """The customer was forgotten (their key deleted): nothing more is done
    for them."""

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        super().__init__(f"customer {customer_id!r} was forgotten")


class OrderStateError(StateError):
    """The order's status does not allow this command."""

    def __init__(self, order_id: UUID, status: str, command: str) -> None:
        self.order_id = order_id
        self.status = status
        self.command = command
        super().__init__(f"cannot {command} order {order_id}: it is {status}")


class PaymentNotOverdueError(StateError):
    """The order has no payment deadline, or it has not passed yet."""

    def __init__(
        self, order_id: UUID, payment_due_at: datetime | None, now: datetime
    ) -> None:
        self.order_id = order_id
        self.payment_due_at = payment_due_at
        self.now = now
        if payment_due_at is None:
            problem = "it has no payment deadline"
        else:
            problem = f"payment is due by {payment_due_at.isoformat()}"
        super().__init__(
            f"order {order_id} is not overdue at {now.isoformat()}: {problem}"
        )


class AllocationStateError(StateError):
    """The order's allocation is not in a status that allows this step."""

    def __init__(self, order_id: UUID, status: str, step: str) -> None:
        self.order_id = order_id
        self.status = status
        self.step = step
        super().__init__(f"cannot {step} the allocation of order {order_id}: {status}")


class InsufficientStockError(StateError):
    """Fewer units are available than the command needs."""

    def __init__(self, sku: str, requested: int, available: int) -> None:
        self.sku = sku
        self.requested = requested
        self.available = available
        super().__init__(f"{sku!r}: {requested} requested, only {available} available")


class StockBelowReservedError(StateError):
    """A stock count would leave fewer units on hand than are reserved."""

    def __init__(self, sku: str, counted: int, reserved: int) -> None:
        self.sku = sku
        self.counted = counted
        self.reserved = reserved
        super().__init__(
            f"{sku!r}: counted {counted} is below the {reserved} units reserved"
        )


class OutOfStockError(StateError):
    """Some lines of an order cannot be reserved; nothing was reserved."""

    def __init__(self, order_id: UUID, short_skus: Iterable[str]) -> None:
        self.order_id = order_id
        self.short_skus = tuple(sorted(short_skus))
        super().__init__(
            f"order {order_id}: not enough stock of {', '.join(self.short_skus)}"
        )


# -- concurrency -------------------------------------------------------------


class ConcurrencyConflictError(ShopError):
    """A command kept losing the race to change an aggregate and gave up."""

    def __init__(self, aggregate_id: UUID, attempts: int) -> None:
        self.aggregate_id = aggregate_id
        self.attempts = attempts
        super().__init__(
            f"aggregate {aggregate_id} changed concurrently {attempts} times; "
            "the command was not applied"
        )


class IdempotencyKeyReusedError(ShopError):
    """An idempotency key still held by one command was given to another, or
    to the same command with other arguments; nothing was written."""

    def __init__(self, key: str, held_by: str, given_to: str) -> None:
        self.key = key
        self.held_by = held_by
        self.given_to = given_to
        other = "with other arguments" if held_by == given_to else f"to {given_to}"
        super().__init__(
            f"idempotency key {_shown(key)} is held by an earlier {held_by} "
            f"and was given {other}; the command was not applied"
        )


# -- dead letters --------------------------------------------------------------


class DeadLetterNotFoundError(NotFoundError):
    """No dead letter has this id."""

    def __init__(self, dead_letter_id: UUID) -> None:
        self.dead_letter_id = dead_letter_id
        super().__init__(f"dead letter {dead_letter_id} not found")


class DeadLetterStateError(StateError):
    """The dead letter is no longer parked, or cannot be retried where it is."""

    def __init__(self, dead_letter_id: UUID, action: str, problem: str) -> None:
        self.dead_letter_id = dead_letter_id
        self.action = action
        self.problem = problem
        super().__init__(f"cannot {action} dead letter {dead_letter_id}: {problem}")


class DeadLetterRetryFailedError(ShopError):
    """Handling a dead letter's event failed again; it stays parked with the
    new error, and nothing of the attempt was written."""

    def __init__(self, dead_letter_id: UUID, error: str) -> None:
        self.dead_letter_id = dead_letter_id
        self.error = error
        super().__init__(f"retry of dead letter {dead_letter_id} failed: {error}")


# -- the database unreachable or lost --------------------------------------------


class StorageUnavailableError(ShopError):
    """The store could not be used within the command's time; says whether the
    command may have been applied all the same."""

    may_have_been_applied: bool = False


class DatabaseUnavailableError(StorageUnavailableError):
    """The database could not be reached before the command's time ran out;
    nothing of the command was sent, so nothing was written."""

    may_have_been_applied = False

    def __init__(self, seconds: float, reason: str) -> None:
        self.seconds = seconds
        self.reason = reason
        super().__init__(
            f"database unavailable for {seconds:.1f} s, nothing was written: {reason}"
        )


class DatabaseConnectionError(DatabaseUnavailableError):
    """Connecting to the database failed: it is unreachable, misnamed, or
    refuses the user; nothing was written."""

    def __init__(
        self,
        host: str,
        port: int,
        dbname: str,
        user: str,
        reason: str,
        *,
        seconds: float = 0.0,
        refused: bool = False,
    ) -> None:
        # refused: the server answered and will not take us (misnamed database,
        # unknown user, wrong password); else it could not be reached at all.
        self.refused = refused
        self.host = host
        self.port = port
        self.dbname = dbname
        self.user = user
        self.reason = reason
        self.seconds = seconds
        # ShopError's own init: the message of DatabaseUnavailableError is not ours.
        ShopError.__init__(
            self,
            f"cannot connect to PostgreSQL database {dbname!r} at {host}:{port} "
            f"as {user!r}: {reason}",
        )


class CommandOutcomeUnknownError(StorageUnavailableError):
    """The connection was lost after the command's write was sent and before
    the database confirmed it, and the database did not come back within the
    command's time to say whether it was stored. Running the same command again
    is safe once it is back: see ``Shop.was_applied``."""

    may_have_been_applied = True

    def __init__(
        self,
        written: Iterable[tuple[UUID, int, str, bytes]],
        seconds: float,
        reason: str,
    ) -> None:
        # What the command sent, as (aggregate id, version, topic, state): enough
        # to tell later, exactly, whether it was stored.
        self.written = tuple(written)
        self.aggregate_ids = tuple(dict.fromkeys(w[0] for w in self.written))
        self.seconds = seconds
        self.reason = reason
        ids = ", ".join(str(aggregate_id) for aggregate_id in self.aggregate_ids)
        super().__init__(
            f"the write to {ids} may have been applied: the database went away "
            f"before confirming it and stayed away for {seconds:.1f} s ({reason})"
        )
