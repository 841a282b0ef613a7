"""The relay of one service: its stored log, published in log order to the
service's JetStream stream, one message per event.

What is published and what is recorded:

* Each message has the id ``<service>:<position>``, so the broker drops one
  published twice within its deduplication window, and expects the stream's
  last sequence to be the one before it (``Nats-Expected-Last-Sequence``): a
  message is never stored after one that was not, and a second relay racing
  this one is refused rather than interleaved. The chain is of sequences, not
  of message ids, because a broker restarted after its deduplication window
  has passed no longer knows its last message's id, and would refuse every
  message that expected one.
* How far the relay has published is recorded in the service's own database
  (a tracking row, ``relay``), and only after the broker acknowledged.
* It resumes from the stream's last message, which is where the
  acknowledgements stopped: a relay killed between the broker's
  acknowledgement and its own record publishes nothing twice, and moves its
  record up to the stream first.

One relay per service is active (its leadership is decided in the service's
database); the others stand by. A broker that is away is waited out with a
backoff and reported (``waiting``), never a crash loop; the service's
commands go on meanwhile and the relay catches up when the broker is back."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import (
    IntegrityError,
    Notification,
    Tracking,
    TrackingRecorder,
)

from application.persistence.transient import Outage, Report
from application.relay.jetstream import (
    EXPECTED_LAST_SEQUENCE,
    BrokerUnavailableError,
    JetStream,
    Outgoing,
    PublishRefusedError,
)
from application.relay.messages import (
    POSITION_HEADER,
    RelayedEvent,
    stream_name,
    stream_subjects,
)
from application.subscribers.background import BackgroundWorker
from application.subscribers.leadership import Leadership

log = logging.getLogger(__name__)

TRACKING_NAME = "relay"
"""The tracking row, in the service's own database, of how far it published."""
DEFAULT_PAGE_SIZE = 500
# How long it waits for a write before it looks again (SQLite's writes from
# other processes are not signalled).
IDLE_POLL_SECONDS = 0.2


def relay_name(service: Application[Any]) -> str:
    """What the relay of ``service`` goes by (its lock, its reports)."""
    return f"relay_{service.name.lower()}"


class EventRelay(BackgroundWorker):
    """Publishes ``service``'s log to its stream while it leads (``start``)."""

    def __init__(
        self,
        service: Application[Any],
        broker: JetStream,
        *,
        leadership: Leadership | None = None,
        report: Report | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        name = relay_name(service)
        super().__init__(
            name,
            thread_name=name,
            leadership=leadership,
            outage=Outage(name, report),
        )
        self.service = service
        self.broker = broker
        self.stream = stream_name(service.name)
        self.page_size = page_size
        self.broker_outage = Outage(name, report, waiting_for="the broker")
        self._report = report
        self._tracking: TrackingRecorder = service.factory.tracking_recorder()
        self._written = threading.Event()
        self._last_sequence = 0
        """The stream's last sequence, as far as this relay knows."""

    # -- what it has done ------------------------------------------------------

    def position(self) -> int:
        """How far it has published, as recorded in the service's database."""
        return self._tracking.max_tracking_id(TRACKING_NAME) or 0

    def relay_once(self) -> int:
        """Publishes what the log holds beyond the stream, page by page, and
        returns the position reached (for tests and ``eventshop relay
        --once``); between pages it stops if asked to, or if it lost its lead.
        Raises BrokerUnavailableError if the broker is away."""
        return self._catch_up(self._start())

    # -- the worker ------------------------------------------------------------

    def _took_lead(self) -> None:
        self._say("running")

    def _standing_by(self) -> None:
        self._say("standby")

    def _heartbeat(self) -> None:
        self._say("running")

    def _interrupt(self) -> None:
        self._written.set()

    def _stopped(self) -> None:
        self._say("stopped")

    def _work(self) -> None:
        wakes = getattr(self.service.recorder, "wake_on_write", None)
        if wakes is not None:
            wakes(self._written)
        # Where the stream stands: asked of the broker once per lead, and again
        # after it was away, not on every look at the log.
        published: int | None = None
        try:
            while not self.stopping.is_set() and self.still_leading():
                try:
                    if published is None:
                        published = self._start()
                    published = self._catch_up(published)
                except BrokerUnavailableError as error:
                    published = None
                    if self.broker_outage.wait(error, self.stopping):
                        return
                    continue
                if self.broker_outage.over():
                    log.info("%s: the broker answers again", self.name)
                self._written.wait(IDLE_POLL_SECONDS)
                self._written.clear()
        finally:
            stops = getattr(self.service.recorder, "stop_waking", None)
            if stops is not None:
                stops(self._written)

    # -- publishing ------------------------------------------------------------

    def _start(self) -> int:
        """Connects, makes sure the stream exists, and says where to publish
        from (see ``_resume``)."""
        self.broker.connect()
        self.broker.ensure_stream(self.stream, [stream_subjects(self.service.name)])
        return self._resume()

    def _catch_up(self, published: int) -> int:
        """Publishes the log after ``published``, page by page, while it may;
        returns the position reached."""
        refused = False
        while not self.stopping.is_set() and self.still_leading():
            page = self.service.recorder.select_notifications(
                published, self.page_size, inclusive_of_start=False
            )
            if not page:
                break
            try:
                published = self._publish(page, after=published)
            except _StreamMovedOnError as moved:
                # Another relay, or an earlier run, published past where this
                # one stood: go on from the stream's end. Refused again at
                # once, the stream refuses what this relay sends: that is
                # waited out with a backoff and reported, never spun on.
                if refused and self.broker_outage.wait(moved, self.stopping):
                    break
                refused = True
                published = self._resume()
            else:
                refused = False
        return published

    def _resume(self) -> int:
        """Where to publish from: after the stream's last message. The
        record is moved up to it if the broker acknowledged more than was
        recorded (the relay was stopped in between)."""
        last = self.broker.last_message(self.stream)
        in_stream = 0 if last is None else int(last.headers[POSITION_HEADER])
        # What the next message expects to follow: the stream's true last
        # sequence (a purged stream's is not its count of messages).
        self._last_sequence = self.broker.last_sequence(self.stream)
        if in_stream > self.position():
            self._record(in_stream)
        return in_stream

    def _publish(self, page: Sequence[Notification], *, after: int) -> int:
        messages = []
        for expected, notification in enumerate(page, start=self._last_sequence):
            relayed = self._relayed(notification)
            headers = {**relayed.headers, EXPECTED_LAST_SEQUENCE: str(expected)}
            messages.append(Outgoing(relayed.subject, relayed.payload(), headers))
        published = self.broker.publish_in_order(messages)
        reached = after
        if published.acknowledged:
            reached = page[published.acknowledged - 1].id
            self._last_sequence = published.last_sequence
            self._record(reached)
        failure = published.failure
        if failure is None:
            return reached
        if isinstance(failure, PublishRefusedError) and failure.wrong_last_message:
            raise _StreamMovedOnError(str(failure))
        raise failure

    def _relayed(self, notification: Notification) -> RelayedEvent:
        try:
            event: object = self.service.mapper.to_domain_event(notification)
        except Exception:
            event = None
        return RelayedEvent.of(self.service.name, notification, event)

    def _record(self, position: int) -> None:
        try:
            self._tracking.insert_tracking(Tracking(TRACKING_NAME, position))
        except IntegrityError:
            # Refused as no step forward: another relay (standing in while
            # this one lost its lead) recorded as far or further meanwhile.
            if self.position() < position:
                raise

    def _say(self, state: str, error: str | None = None) -> None:
        if self._report is not None:
            try:
                self._report(state, error)
            except Exception as failure:
                log.debug("%s: could not report %s: %s", self.name, state, failure)


class _StreamMovedOnError(Exception):
    """The stream moved on under the relay: it resumes from the stream."""
