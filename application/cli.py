"""The ``eventshop`` command."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from application.config import ConfigurationError, Settings
from application.demo import CATALOGUE, run_demo
from application.hosting import declared_subscribers, run_worker
from application.inspection import subscriber_statuses, topology, topology_mermaid
from application.shop import Shop


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="postgresql://user@host/db?schema=name or sqlite:///folder "
        "(default: $EVENTSHOP_DATABASE_URL, else SQLite under ./eventshop-data)",
    )
    parser.add_argument("--data-dir", help="folder for the SQLite files")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventshop", description="An event-sourced shop."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo workload and summarise it")
    _add_storage_options(demo)
    demo.add_argument("--customers", type=int, default=40)
    demo.add_argument("--workers", type=int, default=4)
    demo.add_argument("--seed", type=int, default=None)
    demo.set_defaults(handler=demo_command)

    worker = commands.add_parser(
        "worker", help="run one subscriber in this process (standby if one runs)"
    )
    worker.add_argument("name", help="the subscriber, as `eventshop topology` lists")
    _add_storage_options(worker)
    worker.set_defaults(handler=worker_command)

    status = commands.add_parser(
        "status", help="each subscriber's position, lag and state"
    )
    _add_storage_options(status)
    status.set_defaults(handler=status_command)

    topology = commands.add_parser(
        "topology", help="which event types each subscriber handles"
    )
    topology.add_argument(
        "--mermaid", action="store_true", help="print a Mermaid flowchart"
    )
    topology.set_defaults(handler=topology_command)
    return parser


def demo_command(args: argparse.Namespace, console: Console) -> int:
    settings = _settings(args)
    console.print(f"[bold]eventshop demo[/] on {settings.describe()}")
    with (
        Shop(settings=settings) as shop,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("customers shopping", total=args.customers)
        report = run_demo(
            shop,
            customers=args.customers,
            workers=args.workers,
            seed=args.seed,
            on_progress=lambda: progress.advance(task),
        )
        stock = [shop.get_stock(sku) for sku, *_ in CATALOGUE]
        heads = shop.log_heads()

    summary = Table(title="Customers", show_header=False)
    summary.add_row("customers", str(report.customers))
    summary.add_row("carts checked out", str(report.checked_out))
    summary.add_row("carts abandoned", str(report.abandoned))
    summary.add_row("lines added", str(report.lines_added))
    summary.add_row("value checked out", f"{report.cart_value:.2f}")
    summary.add_row("wall time", f"{report.seconds:.2f} s")
    console.print(summary)

    stock_table = Table(title="Stock")
    for column in ("sku", "name"):
        stock_table.add_column(column)
    for column in ("price", "on hand", "reserved", "available"):
        stock_table.add_column(column, justify="right")
    for item in stock:
        stock_table.add_row(
            item.sku,
            item.name,
            f"{item.price:.2f}",
            str(item.on_hand),
            str(item.reserved),
            str(item.available),
        )
    console.print(stock_table)

    events = Table(title="Event store")
    events.add_column("service")
    events.add_column("log head (events stored)", justify="right")
    for name, head in heads.items():
        events.add_row(name, str(head))
    console.print(events)

    if report.errors:
        console.print(f"[red]{len(report.errors)} customer visits failed:[/]")
        for error in report.errors[:10]:
            console.print(f"  {error}")
        return 1
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_url(args.database_url, data_dir=args.data_dir)


def worker_command(args: argparse.Namespace, console: Console) -> int:
    settings = _settings(args)
    stopping = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stopping.set())
    console.print(f"worker {args.name} on {settings.describe()} (pid {os.getpid()})")
    with Shop(settings=settings, subscribers="workers") as shop:
        run_worker(settings, args.name, shop.services, shop.views, stopping)
    console.print(f"worker {args.name} stopped")
    return 0


def status_command(args: argparse.Namespace, console: Console) -> int:
    settings = _settings(args)
    with Shop(settings=settings, subscribers="workers") as shop:
        statuses = subscriber_statuses(
            shop.subscribers.subscribers, shop.services, shop.views.reports()
        )
    table = Table(title=f"Subscribers ({settings.describe()})")
    for column in ("subscriber", "follows", "state", "running", "host:pid"):
        table.add_column(column)
    table.add_column("standbys", justify="right")
    for column in ("position", "head", "lag (events)", "lag (s)"):
        table.add_column(column, justify="right")
    failed = False
    for status in statuses:
        failed = failed or status.state == "failed"
        table.add_row(
            status.name,
            status.follows,
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
        if status.error:
            last_line = status.error.strip().splitlines()[-1]
            console.print(f"[red]{status.name}:[/] {last_line}")
    return 1 if failed else 0


def topology_command(args: argparse.Namespace, console: Console) -> int:
    subscribers = declared_subscribers()
    if args.mermaid:
        print(topology_mermaid(subscribers))
        return 0
    table = Table(title="Event type -> subscribers")
    table.add_column("event type")
    table.add_column("subscribers")
    for event_type, names in topology(subscribers).items():
        table.add_row(event_type, ", ".join(names))
    console.print(table)
    return 0


Handler = Callable[[argparse.Namespace, Console], int]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    handler: Handler = args.handler
    try:
        return handler(args, console)
    except ConfigurationError as error:
        console.print(f"[red]configuration error:[/] {error}")
        return 2
    except LookupError as error:
        console.print(f"[red]{error}[/]")
        return 2


if __name__ == "__main__":
    sys.exit(main())
