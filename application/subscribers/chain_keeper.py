"""Keeping and verifying the hash chains over the services' event logs.

A :class:`ChainKeeper` chains one service's stored events as its log grows
(``run`` in a thread of its own, or ``extend_now`` once) and verifies its log
against its chain (see ``projections.audit.chain``;
``application.audit.chain_verification`` verifies every service's).

A chain vouches for events as they were when chained: an event altered, or
written straight into the table, before its keeper reached it is chained as it
is. Subscribers and ``eventshop status`` catch what of that cannot be decoded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from application.config import Batching
from application.persistence.paging import notification_pages
from application.persistence.transient import (
    Outage,
    Report,
    lead_through_outages,
)
from application.subscribers.runner import HEARTBEAT_SECONDS, Leadership, Pace, Unshared
from application.subscribers.shared_log import shared_log
from projections.audit.chain import DEFAULT_PAGE_SIZE, ChainStore, ChainVerdict

log = logging.getLogger(__name__)

IDLE_WAIT_SECONDS = 0.5
# Nobody waits for the chain (verification extends it first), and each batch
# is a transaction: while a log is busy, a keeper chains it twice a second.
CHAIN_INTERVAL_SECONDS = 0.5


class ChainKeeper:
    """Chains the stored events of one service (an eventsourcing application)."""

    def __init__(
        self,
        service: Application[Any],
        chains: ChainStore,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        batching: Batching | None = None,
        report: Report | None = None,
    ) -> None:
        self.service = service
        self.chains = chains
        self.page_size = page_size
        self.batching = batching or Batching()
        self.error: BaseException | None = None
        """What stopped :meth:`run`, if it did not stop on request."""
        self._outage = Outage(f"chain keeper of {service.name}", report)

    @property
    def name(self) -> str:
        return self.service.name

    def extend_now(self, stopping: threading.Event | None = None) -> int:
        """Chains every stored event after the chain's head, a page per
        transaction (or up to the page in hand when ``stopping`` is set), and
        returns the new head position."""
        head = self.chains.head(self.name)
        position = 0 if head is None else head.position
        while stopping is None or not stopping.is_set():
            page = self.service.recorder.select_notifications(
                position, self.page_size, inclusive_of_start=False
            )
            if not page:
                return position
            position = self.chains.extend(self.name, page, after=position)
            if len(page) < self.page_size:
                return position
        return position

    def run(
        self, stopping: threading.Event, leadership: Leadership | None = None
    ) -> None:
        """Follows the log and chains what is stored, until ``stopping`` is set,
        while it holds ``leadership`` (one active keeper per service; the
        others stand by), reading the log this process's subscribers share.

        Database outages are waited out (the chain's head is the truth it
        resumes from); any other error is kept in ``error`` and raised."""
        leader = leadership or Unshared()
        try:
            # Standing by, taking the lock or reading the head: the chain's
            # head is the truth it resumes from.
            lead_through_outages(
                lambda: self._lead(stopping, leader), self._outage, stopping
            )
        except Exception as error:
            self.error = error
            raise

    def _lead(self, stopping: threading.Event, leader: Leadership) -> bool:
        """Keeps the chain while it holds the lead; False if stopped while
        standing by. Raises what the database raises."""
        if not leader.acquire(stopping, lambda: None):
            return False
        try:
            self._follow(stopping, leader)
        finally:
            leader.release()
        return True

    def _follow(self, stopping: threading.Event, leader: Leadership) -> None:
        """Chains the log as it grows, until stopped or the leadership is lost."""
        position = self.extend_now(stopping)
        self._outage.over()
        least = max(self.batching.interval_seconds, CHAIN_INTERVAL_SECONDS)
        most = max(self.batching.max_interval_seconds, least)
        paced = replace(
            self.batching, interval_seconds=least, max_interval_seconds=most
        )
        pace = Pace(paced, stopping)
        checked = time.monotonic()
        with shared_log(self.service).follow() as follower:
            while not pace.wait_for_turn():
                batch = follower.batch_after(
                    position,
                    limit=self.batching.max_events,
                    timeout=IDLE_WAIT_SECONDS,
                    stopping=stopping,
                )
                if time.monotonic() - checked > HEARTBEAT_SECONDS:
                    if not leader.is_held():
                        return
                    checked = time.monotonic()
                if batch:
                    pace.took(len(batch))
                    # ``position`` is how far this keeper has read; the chain
                    # may be further on (another keeper), which extend handles
                    # by skipping what is already chained.
                    notifications = [entry.notification for entry in batch]
                    self.chains.extend(self.name, notifications, after=position)
                    pace.finished()
                    position = batch[-1].id
                    self._outage.over()

    @property
    def waiting_for(self) -> str | None:
        """Why it cannot chain just now (the database is away), if so."""
        return self._outage.reason

    def verify(self) -> ChainVerdict:
        """Checks the stored log against the recorded chain."""
        return self.chains.verify(self.name, self._stored_log())

    def _stored_log(self) -> Iterator[Notification]:
        # A generator: the log's head is read at the first step, after
        # ``verify`` has read the chain's, so that every chained position is
        # within the part of the log read.
        up_to = self.service.recorder.max_notification_id()
        if up_to is None:
            return
        # From the very first row, whatever its position: a row forged at
        # position 0 or below is part of the log too.
        for page in notification_pages(
            self.service.recorder, self.page_size, up_to=up_to
        ):
            yield from page
