"""Keeping and verifying the hash chains over the services' event logs.

A :class:`ChainKeeper` chains one service's stored events as its log grows
(a background worker in a thread of its own: ``start``, ``stop``; or
``extend_now`` once) and verifies its log against its chain (see
``projections.audit.chain``; ``application.audit.chain_verification``
verifies every service's).

A chain vouches for events as they were when chained: an event altered, or
written straight into the table, before its keeper reached it is chained as it
is. Subscribers and ``eventshop status`` catch what of that cannot be decoded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from application.config import Batching
from application.persistence.paging import notification_pages
from application.persistence.transient import Outage, Report
from application.subscribers.background import BackgroundWorker
from application.subscribers.leadership import Leadership
from application.subscribers.pace import Pace
from application.subscribers.shared_log import shared_log
from projections.audit.chain import DEFAULT_PAGE_SIZE, ChainStore, ChainVerdict

log = logging.getLogger(__name__)

IDLE_WAIT_SECONDS = 0.5
# Nobody waits for the chain (verification extends it first), and each batch
# is a transaction: while a log is busy, a keeper chains it twice a second.
CHAIN_INTERVAL_SECONDS = 0.5


def chain_keeper_name(service: Application[Any]) -> str:
    """The name a service's chain keeper goes by (its lock, its reports)."""
    return f"chain_{service.name.lower()}"


class ChainKeeper(BackgroundWorker):
    """Chains the stored events of one service (an eventsourcing application):
    now (``extend_now``), or as its log grows, in a thread of its own
    (``start``), while it holds ``leadership`` (one active keeper per service;
    the others stand by), reading the log this process's subscribers share.

    Database outages are waited out (the chain's head is the truth it resumes
    from), and said through ``report`` if given; any other error stops it and
    is kept in ``error``."""

    def __init__(
        self,
        service: Application[Any],
        chains: ChainStore,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        batching: Batching | None = None,
        report: Report | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        super().__init__(
            chain_keeper_name(service),
            thread_name=f"chain {service.name}",
            leadership=leadership,
            outage=Outage(f"chain keeper of {service.name}", report),
        )
        self.service = service
        self.chains = chains
        self.chain = service.name
        """The chain it keeps (named after the service)."""
        self.page_size = page_size
        self.batching = batching or Batching()

    def extend_now(self, stopping: threading.Event | None = None) -> int:
        """Chains every stored event after the chain's head, a page per
        transaction (or up to the page in hand when ``stopping`` is set), and
        returns the new head position."""
        head = self.chains.head(self.chain)
        position = 0 if head is None else head.position
        while stopping is None or not stopping.is_set():
            page = self.service.recorder.select_notifications(
                position, self.page_size, inclusive_of_start=False
            )
            if not page:
                return position
            position = self.chains.extend(self.chain, page, after=position)
            if len(page) < self.page_size:
                return position
        return position

    # -- its part of the lifecycle -------------------------------------------

    def _interrupt(self) -> None:
        # The log this process's subscribers share, as ``_work`` reads it.
        shared_log(self.service).interrupt()

    def _failed(self, error: BaseException) -> None:
        log.exception("chain keeper of %s failed", self.chain, exc_info=error)

    def _work(self) -> None:
        """Chains the log as it grows, until stopped or the leadership is lost."""
        stopping = self.stopping
        position = self.extend_now(stopping)
        self.outage.over()
        least = max(self.batching.interval_seconds, CHAIN_INTERVAL_SECONDS)
        most = max(self.batching.max_interval_seconds, least)
        paced = replace(
            self.batching, interval_seconds=least, max_interval_seconds=most
        )
        pace = Pace(paced, stopping)
        with shared_log(self.service).follow() as follower:
            while not pace.wait_for_turn():
                batch = follower.batch_after(
                    position,
                    limit=self.batching.max_events,
                    timeout=IDLE_WAIT_SECONDS,
                    stopping=stopping,
                )
                if not self.still_leading():
                    return
                if batch:
                    pace.took(len(batch))
                    # ``position`` is how far this keeper has read; the chain
                    # may be further on (another keeper), which extend handles
                    # by skipping what is already chained.
                    notifications = [entry.notification for entry in batch]
                    self.chains.extend(self.chain, notifications, after=position)
                    pace.finished()
                    position = batch[-1].id
                    self.outage.over()

    def verify(self) -> ChainVerdict:
        """Checks the stored log against the recorded chain."""
        return self.chains.verify(self.chain, self._stored_log())

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
