"""Value objects and the checks that turn raw input into them.

Each ``parse_*`` function either returns a clean value or raises a typed
``InvalidInputError``; aggregates call them in their public commands, before any
event is triggered, so bad input never reaches the store.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.errors import (
    InvalidEmailError,
    InvalidIdError,
    InvalidInputError,
    InvalidPriceError,
    InvalidQuantityError,
    InvalidSkuError,
    InvalidTextError,
)

MAX_QUANTITY = 1_000_000
MAX_PRICE = Decimal("1000000.00")
MAX_SKU_LENGTH = 64
MAX_TEXT_LENGTH = 200
CENT = Decimal("0.01")
MAX_INT64 = 2**63 - 1
"""The largest integer either database holds (a BIGINT; SQLite's INTEGER)."""

_SKU_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9._-]*")

# Natural keys become ids in this namespace, so a retried command or a
# re-delivered event finds the aggregate it made before instead of a new one.
ID_NAMESPACE = uuid5(NAMESPACE_URL, "https://eventshop.invalid/ids")


def parse_sku(value: object) -> str:
    """Upper-case letters, digits, '.', '_' and '-', starting alphanumeric."""
    if not isinstance(value, str):
        raise InvalidSkuError("sku", value, "must be a string")
    if not value:
        raise InvalidSkuError("sku", value, "must not be empty")
    if len(value) > MAX_SKU_LENGTH:
        raise InvalidSkuError("sku", value, f"longer than {MAX_SKU_LENGTH}")
    if _SKU_PATTERN.fullmatch(value) is None:
        raise InvalidSkuError(
            "sku", value, "use A-Z, 0-9, '.', '_' and '-', starting with A-Z or 0-9"
        )
    return value


def parse_quantity(value: object, field: str = "quantity") -> int:
    """A whole number of units, at least one."""
    return _parse_count(value, field, minimum=1)


def parse_count(value: object, field: str = "counted") -> int:
    """A whole number of units, zero allowed (a stock count)."""
    return _parse_count(value, field, minimum=0)


def _parse_count(value: object, field: str, minimum: int) -> int:
    # bool is an int subclass; True units of stock is a bug, not a quantity.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidQuantityError(field, value, "must be a whole number")
    if value < minimum:
        raise InvalidQuantityError(field, value, f"must be at least {minimum}")
    if value > MAX_QUANTITY:
        raise InvalidQuantityError(field, value, f"must be at most {MAX_QUANTITY}")
    return value


def parse_price(value: object, field: str = "price") -> Decimal:
    """A positive amount with at most two decimals, from Decimal, int or str."""
    if isinstance(value, (bool, float)):
        # Floats cannot hold most prices exactly; make the caller say what it means.
        raise InvalidPriceError(field, value, "use Decimal, int or str, not float")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str) and len(value) <= 32:
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidPriceError(field, value, "not a number") from None
    else:
        raise InvalidPriceError(field, value, "must be a Decimal, int or str")
    if not amount.is_finite():
        raise InvalidPriceError(field, value, "must be finite")
    if amount <= 0:
        raise InvalidPriceError(field, value, "must be positive")
    if amount > MAX_PRICE:
        raise InvalidPriceError(field, value, f"must be at most {MAX_PRICE}")
    if amount != amount.quantize(CENT):
        raise InvalidPriceError(field, value, "has more than two decimals")
    return amount.quantize(CENT)


def parse_text(
    value: object,
    field: str,
    max_length: int = MAX_TEXT_LENGTH,
    *,
    stored: bool = False,
) -> str:
    """Non-blank single-line text of bounded length, stripped of surrounding
    white space, with no control characters and only Unicode scalar values.

    ``stored``: the text comes from an event already stored (a reaction
    carrying it on, like an order taking its cart's customer id); it was
    judged when it was first given, by the rules of the day, which let
    control characters through. Refusing it now would park the reaction for
    good, so control characters pass."""
    if not isinstance(value, str):
        raise InvalidTextError(field, value, "must be a string")
    text = value.strip()
    if not text:
        raise InvalidTextError(field, value, "must not be blank")
    if len(text) > max_length:
        raise InvalidTextError(field, value, f"longer than {max_length}")
    if not stored and _CONTROL_CHARACTER.search(text) is not None:
        # PostgreSQL cannot store NUL in text at all; the other control
        # characters (tabs and newlines too) have no place in a one-line value
        # and would garble every table and log line that shows it.
        raise InvalidTextError(field, value, "contains a control character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates are valid in a Python str but not in any store.
        raise InvalidTextError(field, value, "is not valid Unicode text") from None
    return text


_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")
"""C0 controls, DEL and C1 controls."""


def parse_whole_number(
    value: object, field: str, least: int, most: int = MAX_INT64
) -> int:
    """A whole number from ``least`` to ``most`` (by default the largest the
    databases' 64-bit integers hold): offsets, limits, versions, positions."""
    # bool is an int subclass; True is not a count of anything.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(field, value, "must be a whole number")
    if not least <= value <= most:
        raise InvalidInputError(field, value, f"must be from {least} to {most}")
    return value


def parse_choice(value: object, field: str, choices: Sequence[str]) -> str:
    """One of ``choices``, exactly as spelt there."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidInputError(field, value, f"must be one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class Line:
    """One line of a cart or an order: how many units of a SKU, at what price."""

    sku: str
    quantity: int
    unit_price: Decimal

    @property
    def subtotal(self) -> Decimal:
        return self.unit_price * self.quantity


def parse_moment(value: object, field: str) -> datetime:
    """A point in time, in UTC: a datetime with its time zone (a naive one is
    ambiguous)."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInputError(field, value, "must be a timezone-aware datetime")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # Within a day of year 1 or 9999, in a zone whose UTC time falls
        # outside what a datetime can hold.
        raise InvalidInputError(field, value, "is out of range in UTC") from None


def total_of(lines: tuple[Line, ...] | list[Line]) -> Decimal:
    return sum((line.subtotal for line in lines), Decimal("0.00"))


def inventory_item_id(sku: str) -> UUID:
    """The id of the inventory item that holds a SKU."""
    return uuid5(ID_NAMESPACE, f"inventory-item/{sku}")


def order_id_for_cart(cart_id: UUID) -> UUID:
    """The id of the order a checked-out cart becomes."""
    return uuid5(ID_NAMESPACE, f"order/{cart_id}")


def parse_id(value: object, field: str) -> UUID:
    """A UUID, or its canonical text form."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            return UUID(value)
        except ValueError:
            pass
    raise InvalidIdError(field, value, "not a UUID")


FORGOTTEN = "[forgotten]"
"""What each personal field of a forgotten customer reads as."""

MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
"""The longest address SMTP can carry (RFC 5321's path limit, less the brackets)."""
MAX_ADDRESS_LENGTH = 500

# Deliberately loose: one "@", something on each side, a dot in the domain and
# no spaces. Only sending mail proves an address; this catches slips of typing.
_EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


@dataclass(frozen=True)
class DeliveryDetails:
    """Who an order goes to and where: personal data of the customer.

    The customer id is pseudonymous and stays readable; the name, e-mail and
    address are stored only encrypted with the customer's own key, and once
    that key is deleted they read as :data:`FORGOTTEN`."""

    customer_id: str
    name: str
    email: str
    address: str

    @classmethod
    def forgotten_for(cls, customer_id: str) -> DeliveryDetails:
        """What the details of a forgotten customer read as."""
        return cls(customer_id, FORGOTTEN, FORGOTTEN, FORGOTTEN)

    @property
    def forgotten(self) -> bool:
        return self.name == self.email == self.address == FORGOTTEN


def parse_delivery_details(
    customer_id: object, name: object, email: object, address: object
) -> DeliveryDetails:
    """The delivery details of an order, each field checked: one line of text
    without control characters, within its length; an e-mail of the form
    local@domain.tld."""
    clean_name = _personal_text(name, "name", MAX_NAME_LENGTH)
    clean_address = _personal_text(address, "address", MAX_ADDRESS_LENGTH)
    try:
        clean_email = parse_text(email, "email", MAX_EMAIL_LENGTH)
    except InvalidTextError as error:
        raise InvalidEmailError("email", email, error.problem) from None
    if _EMAIL_PATTERN.fullmatch(clean_email) is None:
        raise InvalidEmailError("email", email, "must look like name@example.org")
    return DeliveryDetails(
        customer_id=parse_text(customer_id, "customer_id"),
        name=clean_name,
        email=clean_email,
        address=clean_address,
    )


def _personal_text(value: object, field: str, max_length: int) -> str:
    text = parse_text(value, field, max_length)
    if text == FORGOTTEN:
        # The marker must mean one thing only: that the key is gone.
        raise InvalidTextError(field, value, f"{FORGOTTEN} is reserved")
    return text
