"""The ``eventshop`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from application.config import ConfigurationError, Settings
from application.demo import CATALOGUE, run_demo
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
    return parser


def demo_command(args: argparse.Namespace, console: Console) -> int:
    settings = Settings.from_url(args.database_url, data_dir=args.data_dir)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        if args.command == "demo":
            return demo_command(args, console)
    except ConfigurationError as error:
        console.print(f"[red]configuration error:[/] {error}")
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
