"""``eventshop demo``: the demo workload run on a shop (with worker processes
for its subscribers, if asked), and its report."""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from application.cli.options import settings_from
from application.config import Settings
from application.demo.workload import DEMO_PAYMENT_TIMEOUT, SKUS, DemoReport, run_demo
from application.services.aggregate_views import StockView
from application.shop import Shop
from application.subscribers.hosting import worker_groups


def demo_command(args: argparse.Namespace, console: Console) -> int:
    settings = replace(settings_from(args), payment_timeout=DEMO_PAYMENT_TIMEOUT)
    hosting = "worker processes" if args.subscribers == "workers" else "this process"
    console.print(
        f"[bold]eventshop demo[/] on {settings.describe()}; subscribers in {hosting}"
    )
    with contextlib.ExitStack() as stack:
        if args.subscribers == "workers":
            stack.enter_context(demo_workers(settings, console))
        shop = stack.enter_context(
            Shop(settings=settings, subscribers=args.subscribers)
        )
        progress = stack.enter_context(
            Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
        )
        task = progress.add_task("customers shopping", total=args.customers)
        report = run_demo(
            shop,
            customers=args.customers,
            threads=args.threads,
            seed=args.seed,
            on_progress=lambda: progress.advance(task),
        )
        stock = [shop.get_stock(sku) for sku in SKUS]
    print_demo_report(console, report, stock)
    return 0 if report.ok else 1


@contextlib.contextmanager
def demo_workers(settings: Settings, console: Console) -> Iterator[None]:
    """One ``eventshop worker`` process per subscriber, for the demo's duration."""
    # The storage settings (with the password) by environment, not argv.
    env = {**os.environ, **settings.child_environment()}
    groups = worker_groups()
    names = [name for members in groups for name in members]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "application.cli", "worker", *members],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for members in groups
    ]
    console.print(
        f"started {len(workers)} worker processes for {len(names)} subscribers: "
        + "; ".join(", ".join(members) for members in groups)
    )
    try:
        yield
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)


def print_demo_report(
    console: Console, report: DemoReport, stock: Sequence[StockView]
) -> None:
    summary = Table(title="Customers and orders", show_header=False)
    summary.add_row("customers", str(report.customers))
    summary.add_row("carts checked out", str(len(report.checked_out)))
    summary.add_row("carts abandoned", str(report.abandoned))
    for outcome, count in sorted(report.orders_by_outcome.items()):
        summary.add_row(f"orders {outcome}", str(count))
    summary.add_row("commands", str(report.commands))
    summary.add_row("wall time", f"{report.seconds:.2f} s")
    summary.add_row(
        "throughput while shopping",
        f"{report.shopping_commands / report.shopping_seconds:.0f} commands/s "
        "(each checkout settled by the saga)",
    )
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

    events = Table(title="Events stored by this run")
    events.add_column("service")
    events.add_column("events", justify="right")
    events.add_column("events/s", justify="right")
    for name, count in report.events_stored.items():
        events.add_row(name, str(count), f"{count / report.seconds:.0f}")
    console.print(events)

    checks = Table(title="Invariants")
    checks.add_column("check")
    checks.add_column("result")
    checks.add_column("detail")
    for check in report.invariants:
        checks.add_row(
            check.name, "[green]ok[/]" if check.ok else "[red]FAILED[/]", check.detail
        )
    console.print(checks)
    if report.errors:
        console.print(f"[red]{len(report.errors)} customer visits failed:[/]")
        for error in report.errors[:10]:
            console.print(f"  {error}")
