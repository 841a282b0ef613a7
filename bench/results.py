"""What a benchmark run found: one ``Result`` per measured figure, each with
the baseline it is compared with (measured in the same run) and its target."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class WorkloadError(RuntimeError):
    """A workload could not run to the end (a client crashed, a backlog never
    settled, a rebuild failed): the run fails, whatever its figures."""


@dataclass(frozen=True)
class Target:
    """What the issue asks of a figure: a ratio to its baseline of at least
    ``min_ratio``, or a value of at most ``max_value`` (in the figure's unit)."""

    min_ratio: float | None = None
    max_value: float | None = None

    def describe(self, unit: str) -> str:
        if self.min_ratio is not None:
            return f">= {self.min_ratio:g}x"
        if self.max_value is not None:
            return f"<= {self.max_value:g} {unit}"
        return ""

    def met_by(self, value: float, ratio: float | None) -> bool | None:
        if self.min_ratio is not None:
            return None if ratio is None else ratio >= self.min_ratio
        if self.max_value is not None:
            return value <= self.max_value
        return None


NO_TARGET = Target()

FEED_STAGE = "feed_stage"
"""The key of ``Result.details`` naming the stage of the relay workload a
figure measured (direct, relay, broker-fed, end to end): its chart's."""


@dataclass(frozen=True)
class Result:
    """One figure of one workload on one engine.

    ``value`` is eventshop's figure in ``unit``; ``baseline`` the same
    quantity measured for the baseline (``baseline_label``) in the same run.
    ``details`` holds the raw counts and timings behind both."""

    workload: str
    engine: str
    subject: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str | None = None
    target: Target = NO_TARGET
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        return self.target.met_by(self.value, self.ratio)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = self.target.describe(self.unit) or None
        data["ratio"] = self.ratio
        data["met"] = self.met
        return data


def target_from_text(text: str | None) -> Target:
    """The inverse of ``Target.describe``."""
    if not text:
        return NO_TARGET
    if text.startswith(">="):
        return Target(min_ratio=float(text.removeprefix(">=").strip().rstrip("x")))
    if text.startswith("<="):
        return Target(max_value=float(text.removeprefix("<=").split()[0]))
    raise ValueError(f"not a target: {text!r}")


def read_json(path: Path) -> list[Result]:
    """The figures of a run, from the JSON ``write_json`` wrote."""
    document = json.loads(path.read_text())
    results = []
    for data in document["results"]:
        fields = {
            name: value
            for name, value in data.items()
            if name not in ("ratio", "met", "target")
        }
        results.append(Result(**fields, target=target_from_text(data["target"])))
    return results


def rate(operations: int, seconds: float) -> float:
    """Operations per second; 0 for a measurement that took no time at all."""
    return operations / seconds if seconds > 0 else 0.0


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in (0, 1]) of ``samples``."""
    if not samples:
        raise ValueError("no samples")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction {fraction} not in (0, 1]")
    ordered = sorted(samples)
    rank = max(1, math.ceil(len(ordered) * fraction))
    return ordered[rank - 1]


def write_json(
    path: Path,
    results: Iterable[Result],
    *,
    machine: dict[str, Any],
    options: dict[str, Any],
    facts: dict[str, Any],
    seconds: float,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": machine,
        "options": options,
        "seconds": seconds,
        "stores": facts,
        "results": [result.as_json() for result in results],
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
