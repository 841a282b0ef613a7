"""Which errors are the database's passing fault, and how the long-running
parts of a shop (subscriber runners, the payment-deadline ticker, the chain
keepers, worker processes) wait them out.

A lost connection, a server restarting or stopped for a while, a busy SQLite
file: waiting mends these, so whatever runs for the life of a process waits
with a bounded backoff and carries on from what is stored. A refusal (no such
database, no such user, a wrong password) and any other error are not
transient: waiting would not mend them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator

import psycopg
from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import OperationalError as StoreOperationalError

from application.persistence import DatabaseUnreachableError
from application.persistence.budget import backoff
from application.persistence.connections import server_reason
from domain.errors import DatabaseConnectionError, StorageUnavailableError

log = logging.getLogger(__name__)

# Errors of the database rather than of the event: a lost connection, a lock
# or serialization conflict, a busy SQLite file, a command that ran out of
# time waiting for the database. SQLAlchemy and eventsourcing raise their own
# errors "from" these, so the whole chain is searched.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
    StoreOperationalError,
    StoreInterfaceError,
    StorageUnavailableError,
)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        yield cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__


def _is_refusal(error: BaseException) -> bool:
    return (
        isinstance(error, DatabaseUnreachableError | DatabaseConnectionError)
        and error.refused
    )


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is the database's passing fault."""
    chain = list(_chain(error))
    if any(_is_refusal(cause) for cause in chain):
        return False
    return any(isinstance(cause, TRANSIENT_ERRORS) for cause in chain)


def waiting_reason(error: BaseException, waiting_for: str = "the database") -> str:
    """What a part waiting out ``error`` reports, on one line."""
    return f"waiting for {waiting_for}: {server_reason(error) or type(error).__name__}"


Report = Callable[[str, str | None], None]
"""Records a part's state and the reason for it (``ViewStore.report``, bound
to the part's name), for ``eventshop status``."""


class Outage:
    """The transient failures in a row of one long-running loop: each one is
    waited out with a backoff that grows with their number (at most a second,
    see ``budget.backoff``), until the loop reports a success. With ``report``,
    it records ``waiting`` (and the reason) while it waits, ``running`` once
    the database answers again."""

    def __init__(
        self,
        what: str,
        report: Report | None = None,
        *,
        waiting_for: str = "the database",
    ) -> None:
        self.what = what
        self.waiting_for = waiting_for
        """What it waits for, as its reports say (``the broker``)."""
        self.failures = 0
        self.reason: str | None = None
        """Why it waits (None once the database answered again)."""
        self._report = report

    def wait(self, error: BaseException, stopping: threading.Event) -> bool:
        """Logs ``error`` and waits before the next try; True if stopped."""
        self.failed(error)
        return stopping.wait(backoff(self.failures))

    def failed(self, error: BaseException) -> str:
        """Logs and reports ``error`` (for a loop that waits by itself);
        returns the reason it waits."""
        self.failures += 1
        # An error may say what is away (the broker, for a broker-fed runner).
        waiting_for = getattr(error, "waiting_for", None) or self.waiting_for
        reason = self.reason = waiting_reason(error, waiting_for)
        # The first of a run is worth a line; the rest only while debugging.
        level = logging.WARNING if self.failures == 1 else logging.DEBUG
        log.log(level, "%s: %s", self.what, reason)
        self._say("waiting", reason)
        return reason

    def over(self) -> bool:
        """The database answered again; True if it had been failing."""
        was_failing = self.failures > 0
        self.failures = 0
        self.reason = None
        if was_failing:
            self._say("running", None)
        return was_failing

    def _say(self, state: str, reason: str | None) -> None:
        if self._report is None:
            return
        # Said when the database lets it: this is no reason to fail.
        try:
            self._report(state, reason)
        except Exception as error:
            log.debug("%s: could not report %s: %s", self.what, state, error)


def lead_through_outages(
    lead: Callable[[], bool], outage: Outage, stopping: threading.Event
) -> None:
    """Calls ``lead`` again and again until it returns False (stopped while
    standing by) or ``stopping`` is set. A transient error from it is waited
    out (``outage.wait``) and ``lead`` called anew: what it does resumes from
    what is stored. Any other error is raised."""
    while not stopping.is_set():
        try:
            if not lead():
                return
        except Exception as error:
            if not is_transient(error):
                raise
            if outage.wait(error, stopping):
                return
