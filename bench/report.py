"""The run's figures as a table in the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from bench.results import Result


def number(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "MB":
        return f"{value:,.0f} MB"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def results_table(results: Sequence[Result], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for column in ("workload", "engine", "what"):
        table.add_column(column)
    table.add_column("eventshop", justify="right")
    table.add_column("unit")
    table.add_column("baseline", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target")
    table.add_column("note")
    for result in results:
        ratio = result.ratio
        met = result.met
        verdict = {True: "[green]met[/]", False: "[red]missed[/]", None: ""}[met]
        baseline = (
            ""
            if result.baseline is None
            else f"{number(result.baseline, result.unit)} ({result.baseline_label})"
        )
        table.add_row(
            result.workload,
            result.engine,
            result.subject,
            number(result.value, result.unit),
            result.unit,
            baseline,
            "" if ratio is None else f"{ratio:.2f}x",
            f"{result.target.describe(result.unit)} {verdict}".strip(),
            result.note,
        )
    return table


def print_results(console: Console, results: Sequence[Result], title: str) -> None:
    console.print(results_table(results, title))
