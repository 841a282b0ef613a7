"""eventsourcing infrastructure factories for eventshop's two engines.

Both add what the plain library leaves out: the stored events are append-only at
the database level, enforced by triggers that refuse UPDATE and DELETE (and
TRUNCATE on PostgreSQL).
"""

from eventsourcing.persistence import IntegrityError

APPEND_ONLY_MESSAGE = "eventshop: stored events are append-only"


class PositionMovedError(IntegrityError):
    """A subscriber's tracked position is not the one its batch started from:
    another instance handled those events first. Nothing was written."""

    def __init__(self, leader: str, expected: int, found: int | None) -> None:
        self.leader = leader
        self.expected = expected
        self.found = found
        super().__init__(
            f"position in {leader}'s log is {found}, the batch expected {expected}"
        )


EXPECTED_POSITION = "expected_position"
"""Keyword a process service passes with a batch's tracking object: the position
the batch started from, checked in the same transaction that records it."""
