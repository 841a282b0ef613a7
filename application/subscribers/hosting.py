"""Where subscribers run: in a helper process the shop starts (embedded), in
the shop's own threads, or in worker processes (distributed), and how callers
wait for them to catch up.

The payment-deadline ticker runs beside the ``payment_deadlines`` read model it
reads: in the shop's process when embedded, in that read model's worker when
distributed; one instance is active at a time, as for subscribers.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from functools import partial
from typing import Any

from eventsourcing.application import Application

from application.config import ALL_SUBSCRIBERS, VIEWS, FaultPolicy, Settings
from application.databases import ConfigurationError
from application.relay.broker_feed import BrokerLog
from application.relay.jetstream import JetStream
from application.relay.relay import EventRelay, relay_name
from application.services import Orders
from application.services.process import ProcessService, ProcessSubscriber
from application.subscribers.background import BackgroundWorker
from application.subscribers.chain_keeper import ChainKeeper, chain_keeper_name
from application.subscribers.helper_process import SubscriberProcess
from application.subscribers.leadership import (
    AdvisoryLockLeadership,
    FileLockLeadership,
    Leadership,
)
from application.subscribers.payment_deadline_ticker import (
    PaymentDeadlineTicker,
    TickerRunner,
)
from application.subscribers.runner import SubscriberRunner
from application.subscribers.subscriber import Subscriber
from application.topology import TOPOLOGY, SubscriberSpec
from projections.audit.chain import ChainStore
from projections.read_model_subscriber import ReadModelSubscriber
from projections.read_models.payment_deadlines import PaymentDeadlines
from projections.store import ViewStore


class SubscriberFailedError(RuntimeError):
    """A subscriber hosted in this process stopped on an error."""

    def __init__(self, subscriber: str, error: BaseException) -> None:
        self.subscriber = subscriber
        self.error = error
        super().__init__(f"subscriber {subscriber} failed: {error!r}")


def declared_subscribers() -> list[SubscriberSpec]:
    """Every subscriber of a shop: process managers first, then read models, in
    order of declaration in the topology (no database needed)."""
    return TOPOLOGY.declared()


def worker_groups() -> list[list[str]]:
    """The subscribers split into three worker processes (process managers,
    read models, audit indexes with the chain keepers), not one process per
    subscriber: each process opens its own connections, and PostgreSQL allows
    100 in all by default."""
    groups: dict[str, list[str]] = {}
    for subscriber in declared_subscribers():
        group = (
            "audit"
            if TOPOLOGY.is_audit_index(subscriber.name)
            else "process"
            if TOPOLOGY.is_process_manager(subscriber.name)
            else "views"
        )
        groups.setdefault(group, []).append(subscriber.name)
    return list(groups.values())


def all_subscribers(
    services: Mapping[str, Application[Any]], store: ViewStore
) -> list[Subscriber]:
    """Every subscriber of a shop, as the topology declares them, ready to run
    against its services and views (a process manager only if its service is
    among ``services``)."""
    processes: list[Subscriber] = [
        ProcessSubscriber(service, TOPOLOGY.subscription(manager), store.reports.record)
        for manager in TOPOLOGY.process_managers
        if isinstance(service := services.get(manager.service.name), ProcessService)
    ]
    projections: list[Subscriber] = [
        ReadModelSubscriber(entry.read_model, store) for entry in TOPOLOGY.read_models
    ]
    return processes + projections


def leadership_for(
    settings: Settings, subscriber: str, *, part: str = VIEWS
) -> Leadership:
    """One active instance of ``subscriber`` per database of ``part`` (the
    one it records its position in); the others stand by."""
    storage = settings.storage_of(part)
    if storage.engine == "postgres":
        assert storage.postgres is not None
        return AdvisoryLockLeadership(storage.postgres, subscriber)
    return FileLockLeadership(storage.data_dir, subscriber)


def subscriber_runner(
    settings: Settings, subscriber: Subscriber, service: Application[Any]
) -> SubscriberRunner:
    """A runner for ``subscriber`` as the settings say: its leadership, fault
    policy, batching and feed (the log of ``service`` itself, or its stream
    on the broker)."""
    return SubscriberRunner(
        subscriber,
        service,
        leadership_for(settings, subscriber.name, part=recorded_in(subscriber)),
        fault_policy_for(settings, subscriber),
        batching=settings.batching,
        log=broker_feed(settings, subscriber, service),
    )


def broker_feed(
    settings: Settings, subscriber: Subscriber, service: Application[Any]
) -> BrokerLog | None:
    """The stream ``subscriber`` reads ``service`` from, if the settings say
    the broker feeds it (None: it reads the log itself)."""
    if settings.feed_of(subscriber.name) != "broker":
        return None
    assert settings.nats_url is not None
    # Events are decoded as the service itself would (its transcodings and
    # upcasting), from the state it stored.
    return BrokerLog(
        service.name,
        subscriber.name,
        JetStream(settings.nats_url),
        service.mapper.to_domain_event,
    )


def check_broker_fed(settings: Settings) -> None:
    """Refuses settings that name a subscriber the topology does not declare."""
    known = {subscriber.name for subscriber in declared_subscribers()}
    unknown = sorted(settings.broker_fed - known - {ALL_SUBSCRIBERS})
    if unknown:
        raise ConfigurationError(
            f"no subscriber named {', '.join(unknown)} to feed by the broker "
            f"(known: {', '.join(sorted(known))}, or {ALL_SUBSCRIBERS})"
        )


def worker_databases(settings: Settings, subscriber_names: Collection[str]) -> set[str]:
    """The services whose databases a worker of ``subscriber_names`` needs
    (besides the views', where every subscriber reports): a process
    manager's own, which holds its effects and position; the one a
    subscriber follows, unless the broker feeds it; the one an audit index
    follows, whose hash chain its worker keeps from the log itself; and
    Orders for the payment-deadline ticker, which cancels unpaid orders.
    A broker-fed subscriber needs of the service it follows only its mapper,
    which a stand-in in memory provides: so that worker runs on while that
    service's database is away."""
    named = set(subscriber_names)
    needed = {
        manager.service.name
        for manager in TOPOLOGY.process_managers
        if manager.name in named
    }
    for subscriber in declared_subscribers():
        if subscriber.name not in named:
            continue
        if settings.feed_of(subscriber.name) == "direct" or TOPOLOGY.is_audit_index(
            subscriber.name
        ):
            needed.add(subscriber.follows)
    if PaymentDeadlines.name in named:
        needed.add(Orders.name)
    return needed


def relayed_services(settings: Settings, subscribers: Sequence[Subscriber]) -> set[str]:
    """The services some of ``subscribers`` read from the broker: a shop that
    hosts those subscribers also hosts these services' relays."""
    return {
        subscriber.follows
        for subscriber in subscribers
        if settings.feed_of(subscriber.name) == "broker"
    }


def event_relay(settings: Settings, service: Application[Any]) -> EventRelay:
    """The relay of ``service`` to the broker the settings name, one active
    per service database (the others stand by)."""
    assert settings.nats_url is not None
    name = relay_name(service)
    return EventRelay(
        service,
        JetStream(settings.nats_url),
        leadership=leadership_for(settings, name, part=service.name),
    )


def recorded_in(subscriber: Subscriber) -> str:
    """The part whose database holds the subscriber's position: a process
    manager's own service's; the views' for a read model."""
    if isinstance(subscriber, ProcessSubscriber):
        return subscriber.service.name
    return VIEWS


def fault_policy_for(settings: Settings, subscriber: Subscriber) -> FaultPolicy:
    return settings.fault_policy(
        subscriber.name, process_manager=isinstance(subscriber, ProcessSubscriber)
    )


PAYMENT_DEADLINE_TICKER = "payment_deadline_ticker"
"""The name the ticker's leadership (advisory lock) goes by."""


def payment_deadline_runner(
    settings: Settings, ticker: PaymentDeadlineTicker
) -> TickerRunner:
    return TickerRunner(
        PAYMENT_DEADLINE_TICKER,
        ticker.fire_due,
        settings.deadline_tick_seconds,
        leadership_for(settings, PAYMENT_DEADLINE_TICKER),
        report=partial(ticker.views.reports.record, PAYMENT_DEADLINE_TICKER),
    )


class Subscribers:
    """A shop's subscribers, and (when embedded) what hosts them: runners in
    this process's threads (``start``), or a helper process
    (``start_in_helper``); with the payment-deadline ticker, if one is given,
    in this process either way."""

    def __init__(
        self,
        settings: Settings,
        services: Mapping[str, Application[Any]],
        store: ViewStore,
        payment_deadlines: PaymentDeadlineTicker | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self.store = store
        self.subscribers = all_subscribers(services, store)
        check_broker_fed(settings)
        self.runners: list[SubscriberRunner] = []
        self.relays: list[EventRelay] = []
        self.chain_keepers: list[ChainKeeper] = []
        self.helper: SubscriberProcess | None = None
        self._failures_checked = 0.0
        self.deadline_runner = (
            None
            if payment_deadlines is None
            else payment_deadline_runner(settings, payment_deadlines)
        )

    def start(self) -> None:
        """Hosts every subscriber in this process, and the relays of the
        services some of them read from the broker."""
        for service_name in relayed_services(self.settings, self.subscribers):
            relay = event_relay(self.settings, self.services[service_name])
            relay.start()
            self.relays.append(relay)
        for subscriber in self.subscribers:
            runner = subscriber_runner(
                self.settings, subscriber, self.services[subscriber.follows]
            )
            runner.start()
            self.runners.append(runner)
        if self.deadline_runner is not None:
            self.deadline_runner.start()
        self.chain_keepers = chain_keepers(self.settings, self.services, self.store)
        for keeper in self.chain_keepers:
            keeper.start()

    def start_in_helper(self) -> None:
        """Hosts every subscriber in a helper process (see
        ``application.subscribers.helper_process``), the ticker in this one."""
        # As the keepers would make it: readers may look at the chain at once.
        ChainStore(self.store).create_schema()
        self.helper = SubscriberProcess(self.settings, self.services)
        self.helper.start()
        if self.deadline_runner is not None:
            self.deadline_runner.start()

    def stop(self) -> None:
        if self.deadline_runner is not None:
            # First: its ticks write to the services the runners follow.
            self.deadline_runner.stop()
            self.deadline_runner.join()
        if self.helper is not None:
            self.helper.stop()
            self.helper = None
        stop_all([*self.chain_keepers, *self.runners, *self.relays])
        for relay in self.relays:
            relay.broker.close()
        self.chain_keepers.clear()
        self.runners.clear()
        self.relays.clear()

    def wait_until_processed(
        self, timeout: float = 10.0, only: Collection[str] | None = None
    ) -> None:
        """Returns once every subscriber has handled everything written before
        the call AND everything that caused in turn (a checkout places an order,
        which reserves stock, which confirms the order...): it waits until the
        logs stop growing. Raises TimeoutError naming the subscribers still
        behind, or SubscriberFailedError if one hosted here failed. ``only``
        names the subscribers to wait for (default: all)."""
        deadline = time.monotonic() + timeout
        heads = self._heads()
        waited_for = [
            subscriber
            for subscriber in self.subscribers
            if only is None or subscriber.name in only
        ]
        while True:
            self._wait_for(waited_for, heads, deadline, timeout)
            newer = self._heads()
            if newer == heads:
                return
            heads = newer

    def wait_until_started(self, timeout: float = 30.0) -> None:
        """Returns once every subscriber hosted by this shop has reported in
        from where it runs (leading its log or standing by): the helper
        process, or this process. The shop's constructor returns before its
        helper has started, and the helper's start-up (a second or so of CPU)
        would otherwise be shared with the first commands. Raises
        TimeoutError naming those not yet started, or SubscriberFailedError."""
        pid = self.helper.pid if self.helper is not None else None
        if pid is None and self.runners:
            pid = os.getpid()
        if pid is None:
            return
        host = socket.gethostname()
        deadline = time.monotonic() + timeout
        pause = 0.01
        while True:
            self._raise_failures()
            reports = self.store.reports.all()
            missing = [
                subscriber.name
                for subscriber in self.subscribers
                if not any(
                    report.pid == pid and report.host == host
                    for report in reports.get(subscriber.name, ())
                )
            ]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"subscribers not started after {timeout}s: {', '.join(missing)}"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _heads(self) -> dict[str, int]:
        return {
            name: service.recorder.max_notification_id() or 0
            for name, service in self.services.items()
        }

    def _wait_for(
        self,
        subscribers: Sequence[Subscriber],
        heads: Mapping[str, int],
        deadline: float,
        timeout: float,
    ) -> None:
        behind = list(subscribers)
        pause = 0.002
        while True:
            self._raise_failures()
            behind = [
                subscriber
                for subscriber in behind
                if (subscriber.position() or 0) < heads[subscriber.follows]
            ]
            if not behind:
                return
            if time.monotonic() > deadline:
                names = ", ".join(subscriber.name for subscriber in behind)
                raise TimeoutError(
                    f"subscribers still behind after {timeout}s: {names}"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _raise_failures(self) -> None:
        workers: list[BackgroundWorker] = [
            *self.runners,
            *self.chain_keepers,
            *self.relays,
        ]
        if self.deadline_runner is not None:
            workers.append(self.deadline_runner)
        raise_first_failure(workers)
        # What the helper reports is read from the view store: now and then.
        now = time.monotonic()
        if self.helper is not None and now - self._failures_checked > 0.25:
            self._failures_checked = now
            for name, error in self.helper.failures(self.store.reports.all()).items():
                raise SubscriberFailedError(name, error)


def chain_keepers(
    settings: Settings,
    services: Mapping[str, Application[Any]],
    store: ViewStore,
) -> list[ChainKeeper]:
    """Keepers that extend each service's hash chain as its log grows, once
    started: one active keeper per service and store, the others standing by."""
    chains = ChainStore(store)
    chains.create_schema()
    keepers: list[ChainKeeper] = []
    for service in services.values():
        name = chain_keeper_name(service)
        keepers.append(
            ChainKeeper(
                service,
                chains,
                batching=settings.batching,
                report=partial(store.reports.record, name),
                leadership=leadership_for(settings, name),
            )
        )
    return keepers


def stop_all(workers: Sequence[BackgroundWorker]) -> None:
    """Stops ``workers`` and waits for them: all asked first, so that they
    finish the steps in hand together."""
    for worker in workers:
        worker.stop()
    for worker in workers:
        worker.join()


def raise_first_failure(workers: Sequence[BackgroundWorker]) -> None:
    """Raises :class:`SubscriberFailedError` for the first of ``workers`` that
    stopped on an error, if any did."""
    for worker in workers:
        if worker.error is not None:
            raise SubscriberFailedError(worker.name, worker.error)


def run_worker(
    settings: Settings,
    subscriber_names: Sequence[str],
    services: Mapping[str, Application[Any]],
    store: ViewStore,
    stopping: threading.Event,
) -> None:
    """Runs the named subscribers in this process until ``stopping`` is set (or
    every one of them has failed); on PostgreSQL each as the single active
    instance, else as a standby. The worker of ``payment_deadlines`` also runs
    the payment-deadline ticker."""
    subscribers = {
        subscriber.name: subscriber for subscriber in all_subscribers(services, store)
    }
    unknown = [name for name in subscriber_names if name not in subscribers]
    if unknown or not subscriber_names:
        known = ", ".join(subscribers)
        raise LookupError(f"no subscriber named {unknown} (known: {known})")
    runners: list[BackgroundWorker] = [
        subscriber_runner(
            settings, subscribers[name], services[subscribers[name].follows]
        )
        for name in dict.fromkeys(subscriber_names)
    ]
    # The worker of an audit index also keeps the hash chain of the log the
    # index follows.
    audited = {
        subscribers[name].follows
        for name in subscriber_names
        if TOPOLOGY.is_audit_index(name)
    }
    keepers = chain_keepers(
        settings,
        {name: service for name, service in services.items() if name in audited},
        store,
    )
    if PaymentDeadlines.name in subscriber_names:
        orders = services[Orders.name]
        assert isinstance(orders, Orders)
        ticker = PaymentDeadlineTicker(orders, store)
        runners.append(payment_deadline_runner(settings, ticker))
    workers = [*keepers, *runners]
    for worker in workers:
        worker.start()
    try:
        # The keepers ride along with the subscribers the worker is for: it
        # runs while any of those does.
        _wait_while_any_runs(runners, stopping)
    finally:
        stop_all(workers)
    raise_first_failure([*runners, *keepers])


def _wait_while_any_runs(
    runners: Sequence[BackgroundWorker], stopping: threading.Event
) -> None:
    """Returns once ``stopping`` is set or every runner has stopped: one that
    halts (or fails) leaves the others running."""
    while not stopping.wait(0.5):
        if not any(runner.is_alive for runner in runners):
            return
