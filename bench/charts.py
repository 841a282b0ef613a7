"""PNG charts of a run's figures (matplotlib, no display needed):

* ``throughput.png``: per workload and engine, eventshop's rate beside its
  baseline (the read limit, the writing rate, the plain application);
* ``ratios.png``: every ratio to its baseline, with the issue's target;
* ``latency.png``: checkout-to-settled latency percentiles, with the goal;
* ``memory.png``: peak resident memory of the million-event children;
* ``relay.png``: a log to a read model directly, through the relay, from the
  broker and end to end, per engine, each as a ratio to the direct read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter

from bench.results import FEED_STAGE, Result

EVENTSHOP_COLOUR = "#1f77b4"
BASELINE_COLOUR = "#bbbbbb"
MET_COLOUR = "#2ca02c"
MISSED_COLOUR = "#d62728"


def _engines(results: Sequence[Result]) -> list[str]:
    return list(dict.fromkeys(result.engine for result in results))


def _plain_numbers(axis: Any, which: str) -> None:
    """Log-scale ticks as 1,000 rather than 10^3."""
    scale = axis.xaxis if which == "x" else axis.yaxis
    scale.set_major_formatter(
        FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}")
    )
    scale.set_minor_formatter(NullFormatter())


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def throughput_chart(results: Sequence[Result], path: Path) -> Path | None:
    compared = [r for r in results if r.baseline is not None and r.unit.endswith("/s")]
    if not compared:
        return None
    workloads = list(dict.fromkeys(r.workload for r in compared))
    engines = _engines(compared)
    heights = [
        max(
            1,
            *(
                len([r for r in compared if r.workload == w and r.engine == e])
                for e in engines
            ),
        )
        for w in workloads
    ]
    figure, axes = plt.subplots(
        len(workloads),
        len(engines),
        figsize=(7 * len(engines), 1.2 + 0.45 * sum(heights) + 0.6 * len(workloads)),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for row, workload in enumerate(workloads):
        for column, engine in enumerate(engines):
            axis = axes[row][column]
            shown = [
                r for r in compared if r.workload == workload and r.engine == engine
            ]
            if not shown:
                axis.set_visible(False)
                continue
            positions = range(len(shown))
            baselines = axis.barh(
                [p + 0.2 for p in positions],
                [r.baseline or 0 for r in shown],
                height=0.4,
                color=BASELINE_COLOUR,
                label="baseline",
            )
            measured = axis.barh(
                [p - 0.2 for p in positions],
                [r.value for r in shown],
                height=0.4,
                color=EVENTSHOP_COLOUR,
                label="eventshop",
            )
            for bars in (baselines, measured):
                axis.bar_label(bars, fmt="{:,.0f}", fontsize=6, padding=2)
            values = [v for r in shown for v in (r.value, r.baseline or 0) if v > 0]
            if values:
                # Room on the right for the labels of the longest bars.
                axis.set_xlim(min(values) / 2, max(values) * 3)
            axis.set_yticks(
                list(positions),
                [f"{r.subject}\nvs {r.baseline_label}" for r in shown],
                fontsize=7,
            )
            axis.invert_yaxis()
            axis.set_xscale("log")
            _plain_numbers(axis, "x")
            axis.set_xlabel(shown[0].unit, fontsize=8)
            axis.set_title(f"{workload} ({engine})", fontsize=10)
            axis.tick_params(axis="x", labelsize=7)
            axis.grid(axis="x", alpha=0.3)
            if row == 0 and column == 0:
                axis.legend(fontsize=7, loc="lower right")
    return _save(figure, path)


def ratio_chart(results: Sequence[Result], path: Path) -> Path | None:
    rated = [r for r in results if r.ratio is not None and r.target.min_ratio]
    if not rated:
        return None
    figure, axis = plt.subplots(figsize=(9, 1 + 0.28 * len(rated)))
    positions = range(len(rated))
    axis.barh(
        list(positions),
        [r.ratio or 0 for r in rated],
        color=[MET_COLOUR if r.met else MISSED_COLOUR for r in rated],
    )
    axis.scatter(
        [r.target.min_ratio or 0 for r in rated],
        list(positions),
        marker="|",
        s=200,
        color="black",
        label="target",
        zorder=3,
    )
    axis.set_yticks(
        list(positions),
        [f"{r.engine}: {r.workload}: {r.subject}" for r in rated],
        fontsize=7,
    )
    axis.invert_yaxis()
    axis.set_xscale("log")
    _plain_numbers(axis, "x")
    axis.set_xlabel("eventshop / baseline (measured in the same run)")
    axis.legend(fontsize=8, loc="lower right")
    axis.grid(axis="x", alpha=0.3)
    axis.set_title("Ratios to baseline")
    return _save(figure, path)


def latency_chart(results: Sequence[Result], path: Path) -> Path | None:
    timed = [r for r in results if "percentiles_ms" in r.details]
    if not timed:
        return None
    names = list(timed[0].details["percentiles_ms"])
    figure, axis = plt.subplots(figsize=(2 + 2 * len(timed), 4.5))
    width = 0.8 / len(names)
    for offset, name in enumerate(names):
        axis.bar(
            [n + (offset - (len(names) - 1) / 2) * width for n in range(len(timed))],
            [r.details["percentiles_ms"][name] for r in timed],
            width=width,
            label=name,
        )
    goal = timed[0].target.max_value
    if goal is not None:
        axis.axhline(goal, color="black", linestyle="--", linewidth=1)
        axis.text(
            len(timed) - 0.5,
            goal,
            f" p99 goal {goal:g} ms",
            va="bottom",
            fontsize=8,
            ha="right",
        )
    axis.set_xticks(
        list(range(len(timed))),
        [
            f"{r.engine}\n{r.subject.rsplit(', ', 1)[-1]}\n"
            f"{r.details['offered_per_second']:g}/s offered"
            for r in timed
        ],
        fontsize=8,
    )
    axis.set_yscale("log")
    _plain_numbers(axis, "y")
    axis.set_ylabel("ms from checkout() to settled in the order view")
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    axis.set_title("Saga latency at a fixed offered load")
    return _save(figure, path)


def memory_chart(results: Sequence[Result], path: Path) -> Path | None:
    measured = [r for r in results if r.unit == "MB"]
    if not measured:
        return None
    figure, axis = plt.subplots(figsize=(8, 1 + 0.4 * len(measured)))
    axis.barh(
        list(range(len(measured))),
        [r.value for r in measured],
        color=[MET_COLOUR if r.met else MISSED_COLOUR for r in measured],
    )
    goal = measured[0].target.max_value
    if goal is not None:
        axis.axvline(goal, color="black", linestyle="--", linewidth=1)
    axis.set_yticks(
        list(range(len(measured))),
        [f"{r.engine}: {r.subject}" for r in measured],
        fontsize=8,
    )
    axis.invert_yaxis()
    axis.set_xlabel("peak RSS, MB (ru_maxrss of the child)")
    axis.set_title("Peak memory of the catch-up worker and the rebuild children")
    return _save(figure, path)


def relay_chart(results: Sequence[Result], path: Path) -> Path | None:
    staged = [r for r in results if FEED_STAGE in r.details]
    if not staged:
        return None
    engines = _engines(staged)
    stages = list(dict.fromkeys(r.details[FEED_STAGE] for r in staged))
    # The read limit leads each engine's group: what the direct read is
    # measured against, as the stages after it are against the direct read.
    columns = ["read limit", *stages]
    figure, axis = plt.subplots(figsize=(2.5 + 2.2 * len(engines), 4.5))
    width = 0.8 / len(columns)
    for offset, column in enumerate(columns):
        heights: list[float] = []
        labels: list[str] = []
        for engine in engines:
            of_engine = {r.details[FEED_STAGE]: r for r in staged if r.engine == engine}
            direct = of_engine.get(stages[0])
            shown = direct if column == "read limit" else of_engine.get(column)
            if shown is None:
                heights.append(0)
                labels.append("")
            elif column == "read limit":
                heights.append(shown.baseline or 0)
                labels.append(f"{shown.baseline or 0:,.0f}")
            else:
                heights.append(shown.value)
                ratio = "" if shown.ratio is None else f"\n{shown.ratio:.2f}x"
                labels.append(f"{shown.value:,.0f}{ratio}")
        bars = axis.bar(
            [
                n + (offset - (len(columns) - 1) / 2) * width
                for n in range(len(engines))
            ],
            heights,
            width=width,
            label=column,
            color=BASELINE_COLOUR if column == "read limit" else None,
        )
        axis.bar_label(bars, labels=labels, fontsize=6, padding=2)
    axis.set_xticks(list(range(len(engines))), engines)
    _plain_numbers(axis, "y")
    axis.set_ylabel(f"{staged[0].unit} ({staged[0].details.get('log', 'the log')})")
    axis.margins(y=0.2)
    axis.legend(fontsize=7)
    axis.grid(axis="y", alpha=0.3)
    axis.set_title(
        "A log to a read model: directly, and through the relay and JetStream\n"
        "(x: ratio to the read limit for direct, to direct for the others)",
        fontsize=9,
    )
    return _save(figure, path)


def draw_charts(results: Sequence[Result], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    drawn = [
        throughput_chart(results, folder / "throughput.png"),
        ratio_chart(results, folder / "ratios.png"),
        latency_chart(results, folder / "latency.png"),
        memory_chart(results, folder / "memory.png"),
        relay_chart(results, folder / "relay.png"),
    ]
    return [path for path in drawn if path is not None]
