"""The ``eventshop`` command."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
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

from application.audit_cli import add_audit_query_parsers
from application.chain_verification import SERVICE_CLASSES, verify_chains
from application.cli_options import (
    add_storage_options,
    int_between,
    one_of,
    positive_int,
    settings_from,
)
from application.config import (
    Batching,
    ConfigurationError,
    FaultPolicy,
    Settings,
)
from application.dead_letters import DEFAULT_DISCARD_REASON
from application.demo import (
    DEMO_PAYMENT_TIMEOUT,
    MAX_CUSTOMERS,
    MAX_THREADS,
    SKUS,
    DemoReport,
    run_demo,
)
from application.dto import StockView
from application.hosting import (
    SubscriberFailedError,
    declared_subscribers,
    run_worker,
    worker_groups,
)
from application.inspection import (
    STOPPED_BY_FAULT_STATES,
    subscriber_statuses,
    topology,
    topology_mermaid,
    waiting_parts,
)
from application.persistence.transient import Outage, is_transient, waiting_reason
from application.rebuilding import ALL_PROJECTIONS, rebuild_projection
from application.shop import Shop
from domain.dead_letter import DeadLetterStatus
from domain.errors import ShopError
from projections.catalog import PROJECTIONS
from projections.rebuild import (
    RebuildError,
    RebuildMode,
    RebuildReport,
    RebuildStep,
    TableComparison,
)


def subscriber_name() -> Callable[[str], str]:
    """An argparse type: the name of a declared subscriber."""
    return one_of("subscriber", [spec.name for spec in declared_subscribers()])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventshop", description="An event-sourced shop."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo workload and summarise it")
    add_storage_options(demo)
    demo.add_argument(
        "--customers",
        type=int_between(1, MAX_CUSTOMERS),
        default=60,
        help=f"customers who visit the shop (1-{MAX_CUSTOMERS:,}; default 60)",
    )
    demo.add_argument(
        "--threads",
        type=int_between(1, MAX_THREADS),
        default=4,
        help=f"customers shopping at once (1-{MAX_THREADS}; default 4)",
    )
    demo.add_argument(
        "--seed",
        type=int_between(0, 2**63 - 1),
        default=None,
        help="makes the customers' choices repeatable",
    )
    demo.add_argument(
        "--subscribers",
        choices=["embedded", "workers"],
        default="embedded",
        help="run the read models and process managers in this process, or "
        "start one `eventshop worker` process per subscriber",
    )
    demo.set_defaults(handler=demo_command)

    worker = commands.add_parser(
        "worker",
        help="run subscribers in this process (each a standby while another "
        "instance of it runs)",
    )
    worker.add_argument(
        "names",
        nargs="+",
        type=subscriber_name(),
        help="subscribers, as `eventshop topology` lists them",
    )
    add_storage_options(worker)
    worker.add_argument(
        "--on-failure",
        choices=["stop", "park"],
        help="when a handler keeps failing on an event: halt before it, or park "
        "it as a dead letter and go on (default: stop for process managers, "
        "park for read models)",
    )
    worker.add_argument(
        "--batch-size",
        type=positive_int,
        help="the most events a subscriber handles in one transaction while it "
        f"catches up (default {Batching().max_events})",
    )
    worker.set_defaults(handler=worker_command)

    status = commands.add_parser(
        "status", help="each subscriber's position, lag and state"
    )
    add_storage_options(status)
    status.set_defaults(handler=status_command)

    topology = commands.add_parser(
        "topology", help="which event types each subscriber handles"
    )
    topology.add_argument(
        "--mermaid", action="store_true", help="print a Mermaid flowchart"
    )
    topology.set_defaults(handler=topology_command)
    _add_rebuild_parser(commands)
    _add_dead_letters_parser(commands)
    add_audit_query_parsers(add_audit_parsers(commands))
    return parser


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


# -- rebuild --------------------------------------------------------------------


def _add_rebuild_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    rebuild = commands.add_parser(
        "rebuild",
        help="rebuild a read model from the event log into new tables, "
        "compare, and switch readers over",
        description="Rebuilds into new tables while the current ones keep "
        "serving, compares both at the same log position, and switches readers "
        "over if they agree (or always, with --switch). Exits 1 when they differ "
        "and nothing was switched.",
    )
    which = rebuild.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "name",
        nargs="?",
        type=one_of("read model", [projection.name for projection in PROJECTIONS]),
        help="the read model (see `topology`)",
    )
    which.add_argument(
        "--all", action="store_true", help="every read model, one after the other"
    )
    mode = rebuild.add_mutually_exclusive_group()
    mode.add_argument(
        "--verify",
        dest="mode",
        action="store_const",
        const="verify",
        help="only compare and report the differences; never switch",
    )
    mode.add_argument(
        "--switch",
        dest="mode",
        action="store_const",
        const="switch",
        help="switch even if they differ (to roll out a changed read model)",
    )
    rebuild.set_defaults(mode="switch-if-equal", handler=rebuild_command)
    add_storage_options(rebuild)


class EventRateColumn(ProgressColumn):
    """Log positions replayed per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = "-" if speed is None else f"{speed:,.0f}"
        return Text(f"{shown} events/s", style="progress.data.speed")


def rebuild_command(args: argparse.Namespace, console: Console) -> int:
    settings = settings_from(args)
    mode: RebuildMode = args.mode
    name: str = ALL_PROJECTIONS if args.all else args.name
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


def _add_dead_letters_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    dead_letters = commands.add_parser(
        "dead-letters",
        help="events subscribers gave up on and parked: list, retry, discard",
    )
    actions = dead_letters.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the dead letters, oldest first")
    listing.add_argument(
        "--subscriber",
        type=subscriber_name(),
        help="only this subscriber's",
    )
    listing.add_argument(
        "--status", choices=[status.value for status in DeadLetterStatus]
    )
    add_storage_options(listing)
    listing.set_defaults(handler=dead_letters_list_command)
    retry = actions.add_parser(
        "retry",
        help="handle a parked event again (once the fault is fixed); "
        "it takes effect once, with the dead letter marked retried",
    )
    retry.add_argument("id", help="the dead letter's id, as `list` shows it")
    add_storage_options(retry)
    retry.set_defaults(handler=dead_letters_retry_command)
    discard = actions.add_parser(
        "discard", help="give up on a parked event for good, saying why"
    )
    discard.add_argument("id", help="the dead letter's id, as `list` shows it")
    discard.add_argument("--reason", default=DEFAULT_DISCARD_REASON)
    add_storage_options(discard)
    discard.set_defaults(handler=dead_letters_discard_command)


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
        letter = shop.dead_letters.discard(args.id, args.reason)
    console.print(
        f"discarded {letter.event_type} at position {letter.position} "
        f"of {letter.service} for {letter.subscriber}: {letter.discard_reason}"
    )
    return 0


# -- audit ------------------------------------------------------------------------


def add_audit_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The ``audit`` command group; returns its subcommands, for more to join."""
    audit = commands.add_parser(
        "audit", help="check and read the history the event logs hold"
    )
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify",
        help="check each service's event log against its hash chain",
        description="Chains what is new in each log, then recomputes the hash "
        "chain over the stored events and reports the first position where the "
        "log no longer matches it (an event altered, removed or inserted), or "
        "that it is intact. Exits 1 if any log is not intact.",
    )
    verify.add_argument(
        "--service",
        type=str.lower,
        choices=[service.name.lower() for service in SERVICE_CLASSES],
        help="only this service's log (default: all)",
    )
    add_storage_options(verify)
    verify.set_defaults(handler=audit_verify_command)
    return audit_commands


def audit_verify_command(args: argparse.Namespace, console: Console) -> int:
    settings = settings_from(args)
    verdicts = verify_chains(settings, None if args.service is None else [args.service])
    table = Table(title=f"Event log hash chains ({settings.describe()})")
    table.add_column("service")
    table.add_column("verdict")
    for column in ("position", "events checked", "chained up to", "unchained"):
        table.add_column(column, justify="right")
    table.add_column("head link (SHA-256)", no_wrap=True)
    for service, verdict in verdicts.items():
        table.add_row(
            service,
            "[green]intact[/]" if verdict.intact else f"[red]{verdict.kind}[/]",
            "-" if verdict.position is None else str(verdict.position),
            str(verdict.checked),
            str(verdict.head),
            str(verdict.unrecorded),
            verdict.head_link.hex(),
        )
    console.print(table)
    for service, verdict in verdicts.items():
        if not verdict.intact:
            console.print(f"[red]{service}:[/] {verdict.describe()}")
    return 0 if all(verdict.intact for verdict in verdicts.values()) else 1


Handler = Callable[[argparse.Namespace, Console], int]


REFUSED = 2
"""Exit status of a command refused: bad arguments, or a typed eventshop error
(what argparse exits with for bad arguments)."""

# Errors eventshop raises on purpose: each says all there is to say in its
# message, so a traceback would only bury it.
TYPED_ERRORS: tuple[type[Exception], ...] = (ShopError, ConfigurationError)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command and returns its exit status (for bad arguments too,
    rather than raising SystemExit, so that callers in Python get a status
    either way). A typed error is one line on stderr and status 2; anything
    else propagates, with its traceback."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        # argparse has printed the usage and the error (or the help).
        return (
            0
            if exit_.code is None
            else exit_.code
            if isinstance(exit_.code, int)
            else REFUSED
        )
    handler: Handler = args.handler
    try:
        return handler(args, Console())
    except TYPED_ERRORS as error:
        print(f"eventshop: error: {one_line(error)}", file=sys.stderr)
        return REFUSED


def one_line(error: BaseException) -> str:
    """The error's message on one line (a server's reason may span several)."""
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
