"""The one lifecycle of a shop's background workers: a subscriber's runner,
the payment-deadline ticker and a chain keeper.

Each runs in a daemon thread of its own until stopped, and works only while it
holds its leadership (see ``application.subscribers.leadership``): it takes
the lead (standing by meanwhile), works, checks now and then that it still
holds the lead (a heartbeat), and gives it up when it stops or loses it.

When the database goes away anywhere in that loop (taking or checking the
lock, reading what it resumes from, working) the worker waits with a bounded
backoff (``application.persistence.transient.Outage``, reporting ``waiting``
through its report when the database lets it) and takes the lead anew: what
it does resumes from what is stored. Any other error ends the thread and is
kept in ``error``, for its host to raise.

A worker supplies only its work and what it says at each step; the subclasses
are ``SubscriberRunner`` (``runner``), ``TickerRunner``
(``payment_deadline_ticker``) and ``ChainKeeper`` (``chain_keeper``).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod

from application.persistence.transient import Outage, lead_through_outages
from application.subscribers.leadership import HEARTBEAT_SECONDS, Leadership, Unshared

log = logging.getLogger(__name__)


class BackgroundWorker(ABC):
    """A worker in a thread of its own: ``start``, ``stop``, ``join``; while
    it runs, it leads through outages (see the module's docstring)."""

    heartbeat_seconds = HEARTBEAT_SECONDS
    """How often, while leading, it checks its lead and heartbeats (see
    ``still_leading``)."""

    def __init__(
        self,
        name: str,
        *,
        thread_name: str,
        leadership: Leadership | None,
        outage: Outage,
    ) -> None:
        self.name = name
        """What it goes by in reports and failures."""
        self.leadership = leadership or Unshared()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        """What ended its thread, if it did not end on request."""
        self.outage = outage
        """The database failures in a row it is waiting out, if any."""
        self._lead_checked = 0.0
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Asks it to stop (at once, or after the step in hand); see ``join``."""
        self.stopping.set()
        self._interrupt()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.ident is not None:
            self._thread.join(timeout)

    @property
    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def waiting_for(self) -> str | None:
        """Why it cannot work just now (the database is away), if so."""
        return self.outage.reason

    def still_leading(self) -> bool:
        """For the work to call between its steps: False once the lead is lost
        (then the work returns, and the worker stands by again). Checks the
        lock, then heartbeats, at most every ``heartbeat_seconds``; raises what
        the database raises."""
        if time.monotonic() - self._lead_checked <= self.heartbeat_seconds:
            return True
        if not self.leadership.is_held():
            return False
        self._heartbeat()
        self._lead_checked = time.monotonic()
        return True

    # -- what a worker supplies ----------------------------------------------
    # ``_work``; the other hooks do nothing unless a worker has more to say.

    @abstractmethod
    def _work(self) -> None:
        """Works while it leads: returns when ``stopping`` is set or
        ``still_leading`` says no. Raises what the database raises."""

    def _standing_by(self) -> None:  # noqa: B027 (a hook; by default nothing)
        """Called now and then while another instance leads."""

    def _took_lead(self) -> None:  # noqa: B027 (a hook; by default nothing)
        """Called once it holds the lead, before it works."""

    def _heartbeat(self) -> None:  # noqa: B027 (a hook; by default nothing)
        """Called every ``heartbeat_seconds`` while it leads."""

    def _interrupt(self) -> None:  # noqa: B027 (a hook; by default nothing)
        """Wakes the work if it waits for something (``stop`` was called)."""

    def _stopped(self) -> None:  # noqa: B027 (a hook; by default nothing)
        """Called in its thread once it has stopped on request."""

    def _failed(self, error: BaseException) -> None:
        """Called in its thread with the error that ends it (already kept)."""
        log.exception("%s failed", self.name, exc_info=error)

    def _ended(self) -> None:  # noqa: B027 (a hook; by default nothing)
        """Called last in its thread, however it ended."""

    # -- the thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            # A lost connection, a server restarting or gone for a while is
            # waited out, then the worker takes the lead anew and resumes from
            # what is stored.
            lead_through_outages(self._lead, self.outage, self.stopping)
        except BaseException as error:
            self.error = error
            self._failed(error)
        else:
            self._stopped()
        finally:
            self._ended()

    def _lead(self) -> bool:
        """Takes the lead (False: stopped while standing by) and works while
        it holds it. Raises what the database raises."""
        if not self.leadership.acquire(self.stopping, self._standing_by):
            return False
        try:
            self._lead_checked = time.monotonic()
            self._took_lead()
            self._work()
        finally:
            self.leadership.release()
        return True
