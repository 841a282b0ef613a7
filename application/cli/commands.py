"""What each ``eventshop`` command does, once ``application.cli`` has parsed
its arguments: ``COMMANDS`` holds them by the name the parser gives."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from application.cli.audit_commands import (
    audit_events_command,
    audit_history_command,
    audit_state_command,
    audit_stock_command,
    audit_trace_command,
    audit_verify_command,
)
from application.cli.options import settings_from
from application.config import FaultPolicy, Settings
from application.demo.workload import DEMO_PAYMENT_TIMEOUT, SKUS, DemoReport, run_demo
from application.persistence.transient import Outage, is_transient, waiting_reason
from application.services.aggregate_views import StockView
from application.shop import Shop
from application.subscribers.dead_letters import DEFAULT_DISCARD_REASON
from application.subscribers.hosting import (
    SubscriberFailedError,
    run_worker,
    worker_groups,
)
from application.subscribers.rebuild import ALL_READ_MODELS, rebuild_projection
from application.subscribers.status import (
    STOPPED_BY_FAULT_STATES,
    subscriber_statuses,
    topology,
    topology_mermaid,
    waiting_parts,
)
from projections.shadow_rebuild import (
    RebuildError,
    RebuildMode,
    RebuildReport,
    RebuildStep,
    TableComparison,
)

Handler = Callable[[argparse.Namespace, Console], int]


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
            with Shop(settings=settings, subscribers="workers") as shop:
                run_worker(settings, args.names, shop.services, shop.views, stopping)
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
    with Shop(settings=settings, subscribers="workers") as shop:
        reports = shop.views.reports()
        statuses = subscriber_statuses(
            shop.subscribers.subscribers, shop.services, reports
        )
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
    return 1 if failed else 0


def topology_command(args: argparse.Namespace, console: Console) -> int:
    if args.mermaid:
        print(topology_mermaid())
        return 0
    table = Table(title="Event type -> subscribers")
    table.add_column("event type")
    table.add_column("subscribers")
    for event_type, names in topology().items():
        table.add_row(event_type, ", ".join(names))
    console.print(table)
    return 0


# -- rebuild --------------------------------------------------------------------


class EventRateColumn(ProgressColumn):
    """Log positions replayed per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = "-" if speed is None else f"{speed:,.0f}"
        return Text(f"{shown} events/s", style="progress.data.speed")


def rebuild_command(args: argparse.Namespace, console: Console) -> int:
    settings = settings_from(args)
    mode: RebuildMode = args.mode
    name: str = ALL_READ_MODELS if args.all else args.name
    console.print(
        f"[bold]eventshop rebuild {name}[/] ({mode}) on {settings.describe()}"
    )
    tasks: dict[str, TaskID] = {}
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        EventRateColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:

        def show(step: RebuildStep) -> None:
            if step.projection not in tasks:
                tasks[step.projection] = progress.add_task(
                    step.projection, total=step.target
                )
            progress.update(
                tasks[step.projection],
                description=f"{step.projection}: {step.phase}",
                completed=step.position,
                total=step.target,
            )

        try:
            reports = rebuild_projection(settings, name, mode=mode, progress=show)
        except RebuildError as error:
            console.print(f"[red]rebuild failed:[/] {error}")
            return 1
    for report in reports:
        _print_rebuild_report(report, console)
    differ = [report for report in reports if not report.agrees]
    return 1 if differ and mode != "switch" else 0


def _print_rebuild_report(report: RebuildReport, console: Console) -> None:
    console.print(
        f"\n[bold]{report.projection}[/]: built generation {report.generation} "
        f"(version {report.version}) from {report.notifications_read} events "
        f"({report.events_applied} handled) in {report.seconds:.2f} s; compared "
        f"with generation {report.live_generation} (version {report.live_version}) "
        f"at position {report.position} (log head {report.log_head} at the start)"
    )
    for problem in report.undecodable:
        console.print(f"  [yellow]passed over[/] {problem}")
    table = Table()
    table.add_column("table")
    for column in ("live rows", "rebuilt rows", "live checksum", "rebuilt checksum"):
        table.add_column(column, justify="right")
    table.add_column("same")
    for comparison in report.tables:
        table.add_row(
            comparison.table,
            _shown(comparison.live_rows),
            str(comparison.rebuilt_rows),
            _checksum(comparison.live_checksum),
            _checksum(comparison.rebuilt_checksum),
            _sameness(comparison),
        )
    console.print(table)
    for comparison in report.tables:
        for difference in comparison.differences:
            key = ", ".join(str(part) for part in difference.key)
            console.print(f"  {comparison.table} ({key}): {difference.kind}")
    if report.versions_differ:
        console.print(
            f"  the live generation was built by version {report.live_version}, "
            f"this code is version {report.version}: rows were counted, not compared"
        )
    dropped = ", ".join(str(generation) for generation in report.dropped)
    if report.switched:
        console.print(
            f"[green]switched[/]: readers now see generation {report.generation}; "
            f"dropped generation {dropped}"
        )
    elif report.mode == "verify":
        verdict = "[green]same rows[/]" if report.agrees else "[red]differences[/]"
        console.print(
            f"{verdict}; not switched (--verify); dropped generation {dropped}"
        )
    else:
        console.print(
            f"[red]not switched[/]: the generations differ; readers still see "
            f"generation {report.live_generation}; dropped generation {dropped}"
        )


def _shown(count: int | None) -> str:
    return "-" if count is None else str(count)


def _checksum(checksum: int | None) -> str:
    return "-" if checksum is None else f"{checksum:x}"


def _sameness(comparison: TableComparison) -> str:
    if comparison.live_checksum is None:
        return "not compared"
    return "yes" if comparison.agrees else "[red]no[/]"


# -- dead letters -----------------------------------------------------------------


def dead_letters_list_command(args: argparse.Namespace, console: Console) -> int:
    settings = settings_from(args)
    with Shop(settings=settings, subscribers="workers") as shop:
        letters = shop.dead_letters.list(subscriber=args.subscriber, status=args.status)
    table = Table(title=f"Dead letters ({settings.describe()})")
    # Whole, whatever the terminal's width: it is what `retry` takes.
    table.add_column("id", no_wrap=True, min_width=36)
    for column in ("subscriber", "service"):
        table.add_column(column)
    table.add_column("position", justify="right")
    for column in ("event", "status", "parked at", "error"):
        table.add_column(column)
    for letter in letters:
        table.add_row(
            str(letter.dead_letter_id),
            letter.subscriber,
            letter.service,
            str(letter.position),
            f"{letter.event_type} {letter.originator_id}:{letter.originator_version}",
            letter.status.value,
            f"{letter.parked_at:%Y-%m-%d %H:%M:%S}",
            letter.discard_reason if letter.discard_reason else letter.error,
        )
    console.print(table)
    return 0


def dead_letters_retry_command(args: argparse.Namespace, console: Console) -> int:
    with Shop(settings=settings_from(args), subscribers="workers") as shop:
        letter = shop.dead_letters.retry(args.id)
    console.print(
        f"[green]retried[/] {letter.event_type} at position {letter.position} "
        f"of {letter.service} for {letter.subscriber}"
    )
    return 0


def dead_letters_discard_command(args: argparse.Namespace, console: Console) -> int:
    with Shop(settings=settings_from(args), subscribers="workers") as shop:
        reason = DEFAULT_DISCARD_REASON if args.reason is None else args.reason
        letter = shop.dead_letters.discard(args.id, reason)
    console.print(
        f"discarded {letter.event_type} at position {letter.position} "
        f"of {letter.service} for {letter.subscriber}: {letter.discard_reason}"
    )
    return 0


COMMANDS: Mapping[str, Handler] = {
    "demo": demo_command,
    "worker": worker_command,
    "status": status_command,
    "topology": topology_command,
    "rebuild": rebuild_command,
    "dead-letters list": dead_letters_list_command,
    "dead-letters retry": dead_letters_retry_command,
    "dead-letters discard": dead_letters_discard_command,
    "audit verify": audit_verify_command,
    "audit history": audit_history_command,
    "audit events": audit_events_command,
    "audit trace": audit_trace_command,
    "audit stock": audit_stock_command,
    "audit state": audit_state_command,
}
