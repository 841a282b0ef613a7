"""The run's figures as charts and as a table."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from bench.charts import draw_charts, relay_chart
from bench.report import results_table
from bench.results import FEED_STAGE, Result, Target

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def figures() -> list[Result]:
    latency = {"p50": 40.0, "p95": 90.0, "p99": 180.0, "max": 300.0}
    return [
        Result(
            "read models",
            engine,
            "rebuild stock",
            20_000,
            "events/s",
            baseline=40_000,
            baseline_label="read limit",
            target=Target(min_ratio=0.5),
        )
        for engine in ("sqlite", "postgres")
    ] + [
        Result(
            "saga latency",
            "postgres",
            "checkout -> settled in view, embedded",
            latency["p99"],
            "ms",
            target=Target(max_value=250),
            details={"percentiles_ms": latency, "offered_per_second": 50},
        ),
        Result("million events", "postgres", "rebuild stock: peak RSS", 120, "MB"),
        *relay_figures(),
    ]


def relay_figures() -> list[Result]:
    direct = Result(
        "relay and broker feed",
        "sqlite",
        "carts catch-up, direct",
        5_000,
        "events/s",
        baseline=25_000,
        baseline_label="read limit",
        details={FEED_STAGE: "direct"},
    )
    return [direct] + [
        Result(
            "relay and broker feed",
            "sqlite",
            subject,
            value,
            "events/s",
            baseline=direct.value,
            baseline_label="direct catch-up",
            details={FEED_STAGE: stage},
        )
        for stage, subject, value in [
            ("relay", "relay_once Carts -> JetStream", 6_000),
            ("broker-fed", "carts catch-up, broker-fed", 2_000),
            ("end to end", "Carts -> relay -> JetStream -> carts", 1_500),
        ]
    ]


def test_every_chart_is_drawn_as_a_png(tmp_path: Path) -> None:
    drawn = draw_charts(figures(), tmp_path / "charts")
    assert sorted(path.name for path in drawn) == [
        "latency.png",
        "memory.png",
        "ratios.png",
        "relay.png",
        "throughput.png",
    ]
    for path in drawn:
        assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_charts_of_figures_a_run_did_not_measure_are_left_out(tmp_path: Path) -> None:
    drawn = draw_charts(figures()[:2], tmp_path)
    assert sorted(path.name for path in drawn) == ["ratios.png", "throughput.png"]


def test_the_table_shows_each_figure_with_its_ratio_and_verdict() -> None:
    console = Console(width=200, record=True)
    console.print(results_table(figures(), "bench"))
    text = console.export_text()
    assert "rebuild stock" in text
    assert "0.50x" in text
    assert ">= 0.5x met" in text
    assert "<= 250 ms met" in text
    # a figure without a target shows its ratio and no verdict
    assert "0.40x" in text


def test_the_relay_chart_is_drawn_only_for_a_run_that_measured_the_relay(
    tmp_path: Path,
) -> None:
    assert relay_chart(figures()[:2], tmp_path / "none.png") is None
    drawn = relay_chart(relay_figures(), tmp_path / "relay.png")
    assert drawn is not None
    assert drawn.read_bytes().startswith(PNG_SIGNATURE)
