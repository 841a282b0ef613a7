"""Client and child processes of the benchmark harness."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.processes import run_clients, run_measured, wait_measured
from bench.results import WorkloadError
from tests.bench.client_functions import fail_after_start, report_pid


def test_clients_run_in_processes_of_their_own_and_report_in_job_order() -> None:
    results = run_clients(report_pid, [(0,), (1,), (2,)], timeout=120)
    assert [number for number, _ in results] == [0, 1, 2]
    assert len({pid for _, pid in results}) == 3


def test_a_client_that_raises_fails_the_workload_with_its_traceback() -> None:
    with pytest.raises(WorkloadError, match="client 1 refuses"):
        run_clients(fail_after_start, [(0,), (1,)], timeout=120)


def test_a_childs_peak_memory_is_its_own(tmp_path: Path) -> None:
    allocate = (
        "block = bytearray(150 * 2**20); block[::4096] = b'x' * len(block[::4096])"
    )
    finished = run_measured(["-c", allocate], timeout=120, log=tmp_path / "out.log")
    assert finished.returncode == 0
    assert finished.peak_rss_mb >= 150
    small = subprocess.Popen([sys.executable, "-c", "pass"])
    assert wait_measured(small, 120).peak_rss_mb < 150


def test_a_child_that_fails_fails_the_workload_with_its_output(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="broken on purpose"):
        run_measured(
            ["-c", "raise SystemExit('broken on purpose')"],
            timeout=120,
            log=tmp_path / "out.log",
        )
