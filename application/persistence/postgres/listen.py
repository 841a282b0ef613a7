"""LISTEN/NOTIFY for the recorders' subscriptions: one listening connection
per database and process, shared by every channel and subscriber."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Any, ClassVar

import psycopg
from eventsourcing import postgres as es_postgres
from eventsourcing.persistence import ApplicationRecorder, Subscription
from psycopg.sql import SQL, Identifier

from application.persistence.budget import backoff
from application.persistence.connections import BudgetedDatastore
from application.persistence.subscriptions import BatchingSubscription, Waker

log = logging.getLogger(__name__)


class ListenHub:
    """One LISTEN connection per database and process, for every channel (each
    service's log has one) and every subscription to it: an embedded shop
    follows three logs with a dozen subscribers, and PostgreSQL allows 100
    connections by default across all processes. The connection is one of its
    own, outside the services' pool, which would otherwise always hold one
    connection more than its callers use; it is opened when the first
    listener joins and closed when the last one leaves.

    A lost connection is re-established (with backoff) for as long as anyone
    listens, and every listener is woken once LISTEN is in effect again, for
    what was written meanwhile."""

    _hubs: ClassVar[dict[tuple[str, int, str, str], ListenHub]] = {}
    _hubs_lock = threading.Lock()

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._listeners: dict[str, set[Waker]] = {}
        # Set once LISTEN is in effect for the channel (or it failed: then
        # whoever waits for it should look at the log itself).
        self._listening: dict[str, threading.Event] = {}
        self._thread: threading.Thread | None = None

    @classmethod
    def for_datastore(cls, datastore: BudgetedDatastore) -> ListenHub:
        """The hub of this process for the database ``datastore`` is on (which
        it connects with from now on: the one asked last is open)."""
        connect = partial(datastore.connection_of_its_own, "listen")
        with cls._hubs_lock:
            hub = cls._hubs.get(datastore.location)
            if hub is None:
                hub = cls._hubs[datastore.location] = cls(connect)
            else:
                hub._connect = connect
            return hub

    def join(self, channel: str, wake: Waker, timeout: float = 30.0) -> None:
        """Sets ``wake`` whenever ``channel`` is notified, from now on; and
        once at once, when LISTEN is in effect, for writes made before it was."""
        with self._lock:
            self._listeners.setdefault(channel, set()).add(wake)
            listening = self._listening.setdefault(channel, threading.Event())
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._listen, name="listen", daemon=True
                )
                self._thread.start()
        listening.wait(timeout)
        wake.set()

    def leave(self, channel: str, wake: Waker) -> None:
        with self._lock:
            listeners = self._listeners.get(channel)
            if listeners is not None:
                listeners.discard(wake)
                if not listeners:
                    del self._listeners[channel]

    @property
    def channels(self) -> set[str]:
        """The channels someone listens to now."""
        with self._lock:
            return set(self._listeners)

    def _listen(self) -> None:
        failures = 0
        while self._wanted() is not None:
            try:
                with self._connect() as conn:
                    self._serve(conn, woken_after_failure=failures > 0)
                    return
            except Exception as error:
                failures += 1
                log.warning("LISTEN: %r", error)
                with self._lock:
                    for listening in self._listening.values():
                        listening.set()
                self._wake(self.channels)
                # Bounded at a second: while it cannot listen, writes of other
                # processes go unnoticed.
                time.sleep(backoff(failures))

    def _serve(
        self, conn: psycopg.Connection[Any], *, woken_after_failure: bool
    ) -> None:
        """Listens on ``conn`` to the channels wanted, as they come and go,
        until nobody listens any more."""
        listened: set[str] = set()
        while (wanted := self._wanted(listened)) is not None:
            for channel in sorted(wanted - listened):
                conn.execute(SQL("LISTEN {0}").format(Identifier(channel)))
                listened.add(channel)
                with self._lock:
                    self._listening.setdefault(channel, threading.Event()).set()
            for channel in sorted(listened - wanted):
                conn.execute(SQL("UNLISTEN {0}").format(Identifier(channel)))
                listened.discard(channel)
            if woken_after_failure:
                woken_after_failure = False
                self._wake(listened)
            for notify in conn.notifies(timeout=0.1, stop_after=1):
                self._wake({notify.channel})

    def _wanted(self, listened: set[str] | None = None) -> set[str] | None:
        """The channels someone listens to, or None if nobody does (then the
        thread ends). The channels of ``listened`` nobody wants any more are
        forgotten: a listener joining one of them waits for LISTEN again."""
        with self._lock:
            for channel in (listened or set()) - set(self._listeners):
                self._listening.pop(channel, None)
            if not self._listeners:
                self._thread = None
                self._listening.clear()
                return None
            return set(self._listeners)

    def _wake(self, channels: Collection[str]) -> None:
        with self._lock:
            listeners = [
                wake
                for channel in channels
                for wake in self._listeners.get(channel, ())
            ]
        for wake in listeners:
            wake.set()


class PostgresSubscription(
    BatchingSubscription[es_postgres.PostgresApplicationRecorder],
    es_postgres.PostgresSubscription,
):
    """LISTEN/NOTIFY subscription that also hands out batches, listening through
    its process's shared hub rather than a connection of its own."""

    def _listen(self) -> None:
        self._hub.join(self._recorder.channel_name, self._has_been_notified)
        if self._has_been_stopped:
            # Stopped while joining: ``stop`` may have left before we joined.
            self._hub.leave(self._recorder.channel_name, self._has_been_notified)

    def stop(self) -> None:
        super().stop()
        self._hub.leave(self._recorder.channel_name, self._has_been_notified)

    @property
    def _hub(self) -> ListenHub:
        hub: ListenHub = self._recorder.listen_hub  # type: ignore[attr-defined]
        return hub


class Subscribable(es_postgres.PostgresApplicationRecorder):
    # LISTEN/NOTIFY signals every write, whichever process makes it.
    poll_interval: float | None = None

    @property
    def listen_hub(self) -> ListenHub:
        assert isinstance(self.datastore, BudgetedDatastore)
        return ListenHub.for_datastore(self.datastore)

    def wake_on_write(self, waker: Waker) -> None:
        self.listen_hub.join(self.channel_name, waker)

    def stop_waking(self, waker: Waker) -> None:
        self.listen_hub.leave(self.channel_name, waker)

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return PostgresSubscription(recorder=self, gt=gt, topics=topics)
