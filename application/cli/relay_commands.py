"""``eventshop relay``: publishes one service's log to NATS JetStream."""

from __future__ import annotations

import argparse
import os
import signal
import threading

from rich.console import Console
from rich.markup import escape

from application.bootstrap import open_services
from application.cli.options import DEFAULT_NATS_URL, settings_from
from application.relay.jetstream import BrokerUnavailableError, JetStream
from application.relay.messages import stream_name
from application.relay.relay import EventRelay, relay_name
from application.service_names import SERVICE_NAMES
from application.subscribers.hosting import leadership_for


def relay_command(args: argparse.Namespace, console: Console) -> int:
    settings = settings_from(args)
    [service_name] = [name for name in SERVICE_NAMES if name.lower() == args.service]
    services = open_services(settings, [service_name])
    service = services[service_name]
    url = settings.nats_url or DEFAULT_NATS_URL
    broker = JetStream(url)

    def report(state: str, error: str | None) -> None:
        why = f" ({escape(error)})" if error else ""
        console.print(f"relay {service_name}: {state}{why}")

    # Once, it publishes without waiting for the lead: should a running relay
    # publish meanwhile, the stream refuses whichever message comes second,
    # and this one goes on from the stream's end.
    leadership = (
        None
        if args.once
        else leadership_for(settings, relay_name(service), part=service_name)
    )
    relay = EventRelay(
        service, broker, leadership=leadership, report=report, page_size=args.page_size
    )
    target = f"{stream_name(service_name)} on {url}"
    try:
        if args.once:
            try:
                reached = relay.relay_once()
            except BrokerUnavailableError as error:
                console.print(f"[red]relay {service_name}: {escape(str(error))}[/]")
                return 1
            console.print(f"relay {service_name}: published up to {reached}, {target}")
            return 0
        stopping = threading.Event()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signal_number, lambda *_: stopping.set())
        where = settings.storage_of(service_name).describe()
        console.print(
            f"relay {service_name} from {where} to {target} (pid {os.getpid()})"
        )
        relay.start()
        while not stopping.wait(0.5):
            if relay.error is not None:
                console.print(f"[red]relay {service_name} failed: {relay.error}[/]")
                return 1
        relay.stop()
        relay.join(10)
        console.print(f"relay {service_name} stopped at {relay.position()}")
        return 0
    finally:
        broker.close()
        service.close()
