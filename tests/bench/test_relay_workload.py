"""The relay workload at tiny sizes: every stage measured against the direct
read of the same log, the figures written as JSON, and a clear skip without a
NATS server. Against a NATS server of the workload's own."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from bench.results import FEED_STAGE, read_json, write_json
from bench.stores import EngineName
from bench.workloads import relay
from bench.workloads.common import SMOKE_SIZES, Bench
from tests.conftest import ENGINES, POSTGRES_URL, require_postgres
from tests.support.private_nats import require_nats_server

STAGES = [relay.DIRECT, relay.RELAY, relay.BROKER_FED, relay.END_TO_END]


@pytest.fixture(scope="module", params=ENGINES)
def measured(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Bench:
    """One smoke-sized run of the workload per engine, for the module."""
    require_nats_server()
    engine: EngineName = request.param
    if engine == "postgres":
        require_postgres()
    bench = Bench(
        engine,
        POSTGRES_URL,
        tmp_path_factory.mktemp("relay-bench"),
        replace(SMOKE_SIZES, relay_checkouts=5),
        Console(record=True, width=200),
    )
    relay.run(bench)
    return bench


def test_every_stage_is_measured_against_the_direct_read(measured: Bench) -> None:
    stages = {result.details[FEED_STAGE]: result for result in measured.results}
    assert list(stages) == STAGES
    facts = measured.facts[relay.WORKLOAD]
    events = facts["log_heads"]["Carts"]
    assert facts["events"] == events > 5
    direct = stages[relay.DIRECT]
    assert direct.baseline_label == "read limit"
    for stage in STAGES[1:]:
        result = stages[stage]
        assert result.baseline == direct.value
        assert result.baseline_label == "direct catch-up"
        assert result.unit == "events/s"
        assert result.details["notifications"] == events
        assert result.details["seconds"] > 0
        assert result.ratio is not None
    # the broker feeds made their consumers from the stored position
    assert stages[relay.BROKER_FED].details["restarts"] >= 1
    assert stages[relay.END_TO_END].details["restarts"] >= 1
    assert set(facts["seconds"]) == set(STAGES)
    assert facts["view_rows"]["cart_summaries"] > 0


def test_its_figures_are_written_and_read_back_as_json(
    measured: Bench, tmp_path: Path
) -> None:
    path = tmp_path / "run.json"
    write_json(
        path,
        measured.results,
        machine={},
        options={},
        facts={measured.engine: measured.facts},
        seconds=1.0,
    )

    assert read_json(path) == measured.results
    document = json.loads(path.read_text())
    assert [r["details"][FEED_STAGE] for r in document["results"]] == STAGES
    assert all(r["ratio"] is not None for r in document["results"])
    assert document["stores"][measured.engine][relay.WORKLOAD]["nats_server"]


def test_without_nats_server_it_is_skipped_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay, "nats_server_binary", lambda: None)
    console = Console(record=True, width=200)
    bench = Bench("sqlite", "", tmp_path, SMOKE_SIZES, console)

    relay.run(bench)

    assert bench.results == []
    assert bench.facts[relay.WORKLOAD] == {"skipped": "nats-server is not on PATH"}
    assert "skipped, nats-server is not on PATH" in console.export_text()
