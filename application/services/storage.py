"""Database trouble, told as eventshop errors at the boundary of a command.

The persistence layer raises the library's errors (so that subscribers'
runners, which retry them, need not know eventshop's); a caller of the shop
gets a ``domain.errors.StorageUnavailableError`` that says whether its command
may have been applied.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError

from application.databases import redact
from application.persistence import (
    DatabaseUnreachableError,
    WriteOutcomeUnknownError,
)
from domain.errors import (
    CommandOutcomeUnknownError,
    DatabaseConnectionError,
    DatabaseUnavailableError,
)


@contextmanager
def storage_errors(seconds: float) -> Iterator[None]:
    """Translates what the block raises about the database; ``seconds`` is the
    time the block had."""
    try:
        yield
    except WriteOutcomeUnknownError as unknown:
        raise CommandOutcomeUnknownError(
            [
                (
                    UUID(str(event.originator_id)),
                    event.originator_version,
                    event.topic,
                    event.state,
                )
                for event in unknown.stored_events
            ],
            unknown.seconds,
            redact(unknown.reason),
        ) from None
    except DatabaseUnreachableError as unreachable:
        raise DatabaseConnectionError(
            unreachable.host,
            unreachable.port,
            unreachable.dbname,
            unreachable.user,
            unreachable.reason,
            seconds=unreachable.seconds,
            refused=unreachable.refused,
        ) from None
    except (OperationalError, InterfaceError) as lost:
        raise DatabaseUnavailableError(seconds, redact(_one_line(str(lost)))) from None


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "connection lost"
