"""The arithmetic of the benchmark figures: percentiles, ratios, targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.results import Result, Target, percentile, rate, read_json, write_json


def test_percentiles_are_nearest_rank() -> None:
    samples = [float(n) for n in range(100, 0, -1)]  # 100 .. 1, unsorted
    assert percentile(samples, 0.50) == 50
    assert percentile(samples, 0.99) == 99
    assert percentile(samples, 1.0) == 100
    assert percentile([7.0], 0.5) == 7


def test_a_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="not in"):
        percentile([1.0], 0)


def test_a_ratio_target_is_met_at_or_above_its_ratio() -> None:
    target = Target(min_ratio=0.5)
    half = Result("w", "sqlite", "s", 50, "events/s", baseline=100, target=target)
    less = Result("w", "sqlite", "s", 49, "events/s", baseline=100, target=target)
    assert half.ratio == 0.5
    assert half.met is True
    assert less.met is False


def test_a_ceiling_target_is_met_at_or_below_it() -> None:
    target = Target(max_value=250)
    assert Result("w", "pg", "s", 250, "ms", target=target).met is True
    assert Result("w", "pg", "s", 251, "ms", target=target).met is False


def test_a_figure_without_baseline_or_target_has_neither_ratio_nor_verdict() -> None:
    result = Result("w", "pg", "s", 10, "MB")
    assert result.ratio is None
    assert result.met is None
    data = result.as_json()
    assert data["target"] is None
    assert data["met"] is None


def test_the_json_of_a_figure_says_its_target_and_verdict() -> None:
    data = Result(
        "w", "pg", "s", 80, "commands/s", baseline=100, target=Target(min_ratio=0.8)
    ).as_json()
    assert data["ratio"] == pytest.approx(0.8)
    assert data["target"] == ">= 0.8x"
    assert data["met"] is True


def test_a_rate_of_no_time_is_zero_not_a_crash() -> None:
    assert rate(10, 0.0) == 0.0
    assert rate(10, 2.0) == 5.0


def test_a_runs_json_reads_back_as_the_same_figures(tmp_path: Path) -> None:
    results = [
        Result("w", "pg", "r", 80, "ops/s", 100, "plain", Target(min_ratio=0.8)),
        Result("w", "pg", "ceiling", 180, "ms", target=Target(max_value=250.5)),
        Result("w", "sqlite", "neither", 60, "MB", details={"how": "wait4"}),
    ]
    path = tmp_path / "run.json"
    write_json(path, results, machine={}, options={}, facts={}, seconds=1.0)
    assert read_json(path) == results
