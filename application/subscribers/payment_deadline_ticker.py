"""Payment deadlines: a confirmed order not paid in time is cancelled.

The pending deadlines are a read model
(``projections.read_models.payment_deadlines``), so they are durable and
rebuildable. A ticker reads the ones that have passed, by a clock it is given,
and cancels each order through the Orders service as a reaction to the
order's confirmation: same correlation id as the checkout, causation id of the
``Order.Confirmed`` event. Inventory then releases the stock, as for any
cancellation.

A deadline fires once however many tickers run: the order's own rules refuse a
second cancellation (and the cancellation of a paid order), and the store's
version check lets only one of two racing cancellations be recorded; the loser
reloads, is refused, and moves on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

from application.persistence.transient import Outage, Report, is_transient
from application.services import Orders
from application.services.audit_metadata import caused_by
from application.subscribers.background import BackgroundWorker
from application.subscribers.leadership import Leadership
from domain.errors import ConcurrencyConflictError, StateError
from domain.order import Order
from domain.values import parse_moment
from projections.read_models.payment_deadlines import payment_deadlines_due
from projections.store import ViewStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

ACTOR = "process:payment-deadlines"


def system_clock() -> datetime:
    return datetime.now(UTC)


class PaymentDeadlineTicker:
    """Cancels the orders whose payment deadline has passed."""

    def __init__(
        self, orders: Orders, views: ViewStore, clock: Clock = system_clock
    ) -> None:
        self.orders = orders
        self.views = views
        self.clock = clock

    def fire_due(self, now: datetime | None = None) -> list[UUID]:
        """Cancels every order whose deadline has passed at ``now`` (default:
        the clock's time) and is still unpaid; returns the ids of the orders
        this call cancelled."""
        moment = parse_moment(self.clock() if now is None else now, "now")
        return [
            deadline.order_id
            for deadline in payment_deadlines_due(self.views, moment)
            if self._cancel(deadline.order_id, moment)
        ]

    def _cancel(self, order_id: UUID, now: datetime) -> bool:
        confirmed = self._confirmation_of(order_id)
        if confirmed is None:
            return False
        try:
            with caused_by(confirmed, ACTOR):
                self.orders.cancel_unpaid(order_id, now)
        except StateError:
            # Paid, or already cancelled (perhaps by another ticker just now):
            # the deadline no longer applies.
            return False
        except ConcurrencyConflictError:
            # Nothing was recorded and the deadline is still pending: the next
            # tick tries again.
            log.warning("payment deadline of order %s: gave up for now", order_id)
            return False
        return True

    def _confirmation_of(self, order_id: UUID) -> Order.Confirmed | None:
        for stored in self.orders.events.get(order_id, desc=True):
            if isinstance(stored, Order.Confirmed):
                return stored
        return None


class TickerRunner(BackgroundWorker):
    """Calls ``tick`` every ``interval`` seconds in a thread of its own, while
    it holds ``leadership`` (one active ticker per shop on PostgreSQL).

    A tick that fails is logged and the next one tries again: what a tick acts
    on is durable, so nothing is lost by waiting for it. While the database is
    away it says so through ``report``, if given (see ``Outage``)."""

    heartbeat_seconds = 0.0
    """It checks its lead before every tick: a ticker that lost it must not
    act (and has no heartbeat to report: it reports only outages)."""

    def __init__(
        self,
        name: str,
        tick: Callable[[], object],
        interval: float,
        leadership: Leadership | None = None,
        report: Report | None = None,
    ) -> None:
        super().__init__(
            name,
            thread_name=name,
            leadership=leadership,
            outage=Outage(f"ticker {name}", report),
        )
        self.tick = tick
        self.interval = interval
        self._ticks_started = 0
        self._ticks_finished = 0
        self._ticked = threading.Condition()

    def wait_for_tick(self, timeout: float) -> bool:
        """Blocks until a tick that started after this call has finished; False
        on timeout, or at once if the runner is not running."""
        deadline = time.monotonic() + timeout
        with self._ticked:
            wanted = self._ticks_started + 1
            while self._ticks_finished < wanted:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.stopping.is_set() or not self.is_alive:
                    return False
                self._ticked.wait(remaining)
        return True

    # -- its part of the lifecycle -------------------------------------------

    def _took_lead(self) -> None:
        # Taking the lock needed the database: it answers again.
        self.outage.over()

    def _work(self) -> None:
        """Ticks while it holds the lead."""
        while not self.stopping.wait(self.interval):
            if not self.still_leading():
                return
            self._tick()

    def _interrupt(self) -> None:
        self._wake_waiters()

    def _failed(self, error: BaseException) -> None:
        log.exception("ticker %s failed", self.name, exc_info=error)

    def _ended(self) -> None:
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        with self._ticked:
            self._ticked.notify_all()

    def _tick(self) -> None:
        with self._ticked:
            self._ticks_started += 1
        try:
            self.tick()
            self.outage.over()
        except Exception as error:
            if is_transient(error):
                # The next tick tries again.
                self.outage.failed(error)
            else:
                log.exception(
                    "ticker %s: tick failed; trying again next time", self.name
                )
        finally:
            with self._ticked:
                self._ticks_finished += 1
                self._ticked.notify_all()
