"""Client and child processes of the benchmark harness."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.processes import run_clients, run_measured
from bench.results import WorkloadError
from tests.bench.client_functions import fail_after_start, report_pid


def test_clients_run_in_processes_of_their_own_and_report_in_job_order() -> None:
    results = run_clients(report_pid, [(0,), (1,), (2,)], timeout=120)
    assert [number for number, _ in results] == [0, 1, 2]
    assert len({pid for _, pid in results}) == 3


def test_a_client_that_raises_fails_the_workload_with_its_traceback() -> None:
    with pytest.raises(WorkloadError, match="client 1 refuses"):
        run_clients(fail_after_start, [(0,), (1,)], timeout=120)


# Touch every page, so that the memory is resident, not only reserved.
ALLOCATE_150_MB = "b = bytearray(150 * 2**20); b[::4096] = b'x' * len(b[::4096])"


def test_a_childs_peak_memory_is_measured(tmp_path: Path) -> None:
    finished = run_measured(
        ["-c", ALLOCATE_150_MB], timeout=120, log=tmp_path / "out.log"
    )
    assert finished.returncode == 0
    assert finished.peak_rss_mb >= 150


def test_the_harness_memory_does_not_count_as_the_childs(tmp_path: Path) -> None:
    # Linux carries the high-water mark across exec: a child started straight
    # from a big parent would report the parent's memory.
    held = bytearray(300 * 2**20)
    held[::4096] = b"x" * len(held[::4096])
    finished = run_measured(["-c", "pass"], timeout=120, log=tmp_path / "out.log")
    assert finished.peak_rss_mb < 100
    del held


def test_a_child_that_fails_fails_the_workload_with_its_output(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="broken on purpose"):
        run_measured(
            ["-c", "raise SystemExit('broken on purpose')"],
            timeout=120,
            log=tmp_path / "out.log",
        )
