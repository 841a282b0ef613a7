"""``eventshop worker|status|topology``: hosting subscribers in this process,
where every subscriber stands, and which subscribers each event type reaches."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import replace

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from application.bootstrap import bootstrap, open_worker_stores
from application.cli.options import settings_from
from application.config import FaultPolicy
from application.persistence.transient import Outage, is_transient, waiting_reason
from application.relay.jetstream import JetStream
from application.relay.messages import stream_name
from application.relay.relay_status import (
    FeedStatus,
    RelayStatus,
    feed_statuses,
    relay_statuses,
)
from application.subscribers.hosting import (
    SubscriberFailedError,
    check_broker_fed,
    declared_subscribers,
    run_worker,
)
from application.subscribers.status import (
    STOPPED_BY_FAULT_STATES,
    subscriber_statuses,
    topology,
    topology_mermaid,
    waiting_parts,
)


def worker_command(args: argparse.Namespace, console: Console) -> int:
    settings = settings_from(args)
    if args.on_failure is not None:
        policy = FaultPolicy(on_failure=args.on_failure)
        settings = replace(
            settings,
            fault_policies={
                **settings.fault_policies,
                **dict.fromkeys(args.names, policy),
            },
        )
    if args.batch_size is not None:
        settings = replace(
            settings, batching=replace(settings.batching, max_events=args.batch_size)
        )
    stopping = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stopping.set())
    names = ", ".join(args.names)
    console.print(f"worker {names} on {settings.describe()} (pid {os.getpid()})")
    outage = Outage(f"worker {names}")
    while not stopping.is_set():
        try:
            with open_worker_stores(settings, args.names) as stores:
                run_worker(
                    settings, args.names, stores.services, stores.views, stopping
                )
        except SubscriberFailedError as stopped:
            # Halted or crashed: `eventshop status` shows where, with the
            # traceback.
            console.print(
                f"[red]worker {stopped.subscriber} stopped: {stopped.error}[/]"
            )
            return 1
        except Exception as error:
            # The database is not there yet (or went away while the worker
            # set up): wait for it rather than exit; a refusal is not waited.
            if not is_transient(error):
                raise
            if outage.failures == 0:
                console.print(f"worker {names}: {waiting_reason(error)}")
            outage.wait(error, stopping)
        else:
            break
    console.print(f"worker {names} stopped")
    return 0


def status_command(args: argparse.Namespace, console: Console) -> int:
    settings = settings_from(args)
    broker = (
        None if settings.nats_url is None else JetStream(settings.nats_url, timeout=2.0)
    )
    try:
        with bootstrap(settings, hosting="workers") as parts:
            reports = parts.views.reports.all()
            subscribers = parts.subscribers.subscribers
            statuses = subscriber_statuses(subscribers, parts.services, reports)
            relays = relay_statuses(parts.services, broker)
        fed = [
            (subscriber.name, subscriber.follows)
            for subscriber in subscribers
            if settings.feed_of(subscriber.name) == "broker"
        ]
        feeds = [] if broker is None else feed_statuses(fed, broker)
    finally:
        if broker is not None:
            broker.close()
    waiting = waiting_parts(reports, {status.name for status in statuses})
    table = Table(title=f"Subscribers ({settings.describe()})")
    for column in ("subscriber", "follows", "state", "running", "host:pid"):
        table.add_column(column)
    table.add_column("standbys", justify="right")
    for column in ("position", "head", "lag (events)", "lag (s)"):
        table.add_column(column, justify="right")
    failed = False
    for status in statuses:
        failed = failed or status.state in STOPPED_BY_FAULT_STATES
        table.add_row(
            status.name,
            status.follows
            + (" (broker)" if settings.feed_of(status.name) == "broker" else ""),
            status.state,
            "yes" if status.running else "no",
            f"{status.host}:{status.pid}" if status.host else "-",
            str(status.standbys),
            str(status.position),
            str(status.head),
            str(status.lag_events),
            "-" if status.lag_seconds is None else f"{status.lag_seconds:.1f}",
        )
    console.print(table)
    for status in statuses:
        if status.error_summary:
            console.print(f"[red]{status.name}:[/] {status.error_summary}")
    for status in statuses:
        if status.next_event_error:
            # A corrupt event in a log is a fault too: it halts or is parked.
            failed = True
            console.print(
                f"[red]{status.name}:[/] next event: "
                + escape(status.next_event_error),
                soft_wrap=True,
                highlight=False,
            )
    for part in waiting:
        console.print(f"[yellow]{part.name}[/] ({part.host}:{part.pid}): {part.reason}")
    if broker is not None or any(relay.published for relay in relays):
        console.print(_relays_table(relays))
    if feeds:
        console.print(_feeds_table(feeds))
    return 1 if failed else 0


def _relays_table(relays: Sequence[RelayStatus]) -> Table:
    table = Table(title="Relays (log -> stream)")
    table.add_column("service")
    table.add_column("stream")
    for column in ("published", "head", "lag (events)", "stream last seq"):
        table.add_column(column, justify="right")
    table.add_column("note")
    for relay in relays:
        last = relay.stream_last_sequence
        table.add_row(
            relay.service,
            relay.stream,
            str(relay.published),
            str(relay.head),
            str(relay.lag_events),
            "-" if last is None else str(last),
            relay.stream_note or "",
        )
    return table


def _feeds_table(feeds: Sequence[FeedStatus]) -> Table:
    table = Table(title="Broker-fed subscribers (stream -> consumer)")
    table.add_column("subscriber")
    table.add_column("stream")
    for column in ("stream last seq", "acknowledged", "lag (messages)"):
        table.add_column(column, justify="right")
    table.add_column("note")
    for feed in feeds:
        table.add_row(
            feed.subscriber,
            feed.stream,
            "-" if feed.last_sequence is None else str(feed.last_sequence),
            "-" if feed.acknowledged is None else str(feed.acknowledged),
            "-" if feed.lag_messages is None else str(feed.lag_messages),
            escape(feed.error or ""),
        )
    return table


def topology_command(args: argparse.Namespace, console: Console) -> int:
    settings = settings_from(args)
    check_broker_fed(settings)
    feeds = {
        subscriber.name: settings.feed_of(subscriber.name)
        for subscriber in declared_subscribers()
    }
    if args.mermaid:
        print(topology_mermaid(feeds=feeds))
        return 0
    table = Table(title="Event type -> subscribers")
    table.add_column("event type")
    table.add_column("subscribers")
    for event_type, names in topology().items():
        table.add_row(event_type, ", ".join(names))
    console.print(table)
    reads = Table(title="Subscriber -> what it reads")
    reads.add_column("subscriber")
    reads.add_column("follows")
    reads.add_column("feed")
    for subscriber in declared_subscribers():
        feed = feeds[subscriber.name]
        reads.add_row(
            subscriber.name,
            subscriber.follows,
            f"broker: stream {stream_name(subscriber.follows)}"
            if feed == "broker"
            else "direct: the service's log",
        )
    console.print(reads)
    return 0
