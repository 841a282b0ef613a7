"""``eventshop rebuild``: a read model rebuilt beside the live one, with its
progress, and the comparison of the two generations."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from application.cli.options import settings_from
from application.subscribers.rebuild import ALL_READ_MODELS, rebuild_projection
from projections.shadow_rebuild import (
    RebuildError,
    RebuildMode,
    RebuildReport,
    RebuildStep,
)
from projections.store.comparison import TableComparison


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
