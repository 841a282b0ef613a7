"""Inventory's answer to one order: every line reserved, or the order refused.

The allocation records the outcome of reserving an order's lines as one fact,
so Orders can react to a single event (``Reserved`` or ``Refused``) instead of
counting reservations across items, and a redelivered ``Order.Placed`` finds the
allocation it made before (its id derives from the order's).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import AllocationStateError
from domain.values import ID_NAMESPACE, Line, parse_sku, parse_text


class AllocationStatus(StrEnum):
    REQUESTED = "requested"
    RESERVED = "reserved"
    REFUSED = "refused"
    RELEASED = "released"
    COMMITTED = "committed"


def allocation_id(order_id: UUID) -> UUID:
    return uuid5(ID_NAMESPACE, f"allocation/{order_id}")


class Allocation(Aggregate):
    """The stock set aside for one order, as one all-or-nothing decision."""

    class Requested(Aggregate.Created):
        order_id: UUID
        lines: list[Line]

    class Reserved(Aggregate.Event):
        order_id: UUID

    class Refused(Aggregate.Event):
        order_id: UUID
        short_skus: list[str]
        reason: str

    class Released(Aggregate.Event):
        order_id: UUID

    class Committed(Aggregate.Event):
        order_id: UUID

    @staticmethod
    def create_id(order_id: UUID) -> UUID:
        return allocation_id(order_id)

    @classmethod
    def request(cls, order_id: UUID, lines: Sequence[Line]) -> Allocation:
        return cls(order_id=order_id, lines=list(lines))

    @event(Requested)
    def __init__(self, order_id: UUID, lines: list[Line]) -> None:
        self._order_id = order_id
        self._lines = list(lines)
        self._status: str = AllocationStatus.REQUESTED
        self._short_skus: list[str] = []

    @property
    def order_id(self) -> UUID:
        return self._order_id

    @property
    def lines(self) -> tuple[Line, ...]:
        return tuple(self._lines)

    @property
    def status(self) -> AllocationStatus:
        return AllocationStatus(self._status)

    @property
    def short_skus(self) -> tuple[str, ...]:
        return tuple(self._short_skus)

    def reserve(self) -> None:
        """Every line was reserved (the items' own events say so)."""
        self._check("reserve", AllocationStatus.REQUESTED)
        self._reserve(order_id=self._order_id)

    def refuse(self, short_skus: Sequence[str], reason: str) -> None:
        """Some lines could not be reserved, so none were."""
        self._check("refuse", AllocationStatus.REQUESTED)
        skus = sorted({parse_sku(sku) for sku in short_skus})
        self._refuse(
            order_id=self._order_id,
            short_skus=skus,
            reason=parse_text(reason, "reason"),
        )

    def release(self) -> None:
        self._check("release", AllocationStatus.RESERVED)
        self._release(order_id=self._order_id)

    def commit(self) -> None:
        self._check("commit", AllocationStatus.RESERVED)
        self._commit(order_id=self._order_id)

    def _check(self, step: str, *allowed: AllocationStatus) -> None:
        if self.status not in allowed:
            raise AllocationStateError(self._order_id, self.status.value, step)

    @event(Reserved)
    def _reserve(self, order_id: UUID) -> None:
        self._status = AllocationStatus.RESERVED

    @event(Refused)
    def _refuse(self, order_id: UUID, short_skus: list[str], reason: str) -> None:
        self._status = AllocationStatus.REFUSED
        self._short_skus = list(short_skus)

    @event(Released)
    def _release(self, order_id: UUID) -> None:
        self._status = AllocationStatus.RELEASED

    @event(Committed)
    def _commit(self, order_id: UUID) -> None:
        self._status = AllocationStatus.COMMITTED
