"""eventsourcing infrastructure factories for eventshop's two engines.

Both add what the plain library leaves out: the stored events are append-only at
the database level, enforced by triggers that refuse UPDATE and DELETE (and
TRUNCATE on PostgreSQL).
"""

from collections.abc import Sequence

from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

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


class DatabaseUnreachableError(OperationalError):
    """No connection could be had: the server is down, restarting, unreachable,
    or answered with a refusal (``refused``: a misnamed database, an unknown
    user, a wrong password, which waiting will not mend). Nothing was sent."""

    def __init__(
        self,
        location: tuple[str, int, str, str],
        reason: str,
        *,
        seconds: float,
        refused: bool,
    ) -> None:
        self.host, self.port, self.dbname, self.user = location
        self.reason = reason
        self.seconds = seconds
        self.refused = refused
        super().__init__(
            f"cannot connect to PostgreSQL database {self.dbname!r} at "
            f"{self.host}:{self.port} as {self.user!r}: {reason}"
        )


class WriteOutcomeUnknownError(OperationalError):
    """The connection was lost after a write was sent, and the database did not
    come back in time to tell whether it was stored."""

    def __init__(
        self, stored_events: Sequence[StoredEvent], seconds: float, reason: str
    ) -> None:
        self.stored_events = tuple(stored_events)
        self.seconds = seconds
        self.reason = reason
        super().__init__(f"outcome of a write unknown after {seconds:.1f} s: {reason}")
