"""Other processes a workload needs: client processes that start their timed
work together (``run_clients``), ``eventshop worker`` processes
(``WorkerProcesses``) and a child run to its end (``run_measured``); the last
two with their peak memory measured (``MeasuredChild``).

A process that fails makes the workload fail (``WorkloadError``) with its
traceback or its output, so that a crash is never reported as a figure."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from application.config import DATABASE_URL_VARIABLE
from bench.results import WorkloadError

R = TypeVar("R")

# Client processes import the whole shop (about 1.5 s of CPU each): a group of
# them may take a while to come up on a busy two-core machine.
START_TIMEOUT_SECONDS = 180.0


class StartSignal(Protocol):
    """What a client calls once its setup is done: it returns when every
    client of the group is ready, so that their timed work starts together."""

    def __call__(self) -> None: ...


class _BarrierSignal:
    def __init__(self, barrier: Any) -> None:
        self.barrier = barrier

    def __call__(self) -> None:
        self.barrier.wait(START_TIMEOUT_SECONDS)


def _client_main(
    target: Callable[..., object],
    index: int,
    args: tuple[Any, ...],
    barrier: Any,
    results: Any,
) -> None:
    try:
        result = target(*args, start=_BarrierSignal(barrier))
    except BaseException:
        barrier.abort()
        results.put((index, False, traceback.format_exc()))
        raise SystemExit(1) from None
    results.put((index, True, result))


def run_clients(
    target: Callable[..., R], jobs: Sequence[tuple[Any, ...]], *, timeout: float
) -> list[R]:
    """Runs ``target(*job, start=...)`` in a spawned process per job, and
    returns their results in job order. Each client calls ``start()`` once,
    after its setup: the clients start their timed work together."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(jobs))
    results = context.Queue()
    processes = [
        context.Process(
            target=_client_main,
            args=(target, index, job, barrier, results),
            name=f"bench client {index}",
        )
        for index, job in enumerate(jobs)
    ]
    for process in processes:
        process.start()
    collected: dict[int, Any] = {}
    failures: list[str] = []
    try:
        failures = _collect(processes, results, collected, timeout)
    finally:
        if failures or len(collected) < len(processes):
            barrier.abort()
            for process in processes:
                process.terminate()
        for process in processes:
            process.join(timeout=60)
    if failures:
        # The clients that only saw the start abandoned come after the cause.
        failures.sort(key=lambda failure: "BrokenBarrierError" in failure)
        raise WorkloadError("\n".join(failures))
    return [collected[index] for index in range(len(processes))]


def _collect(
    processes: Sequence[Any], results: Any, collected: dict[int, Any], timeout: float
) -> list[str]:
    """Gathers each client's result into ``collected``; returns what failed."""
    failures: list[str] = []
    deadline = time.monotonic() + timeout
    while len(collected) + len(failures) < len(processes):
        try:
            index, ok, payload = results.get(timeout=1.0)
        except queue.Empty:
            if time.monotonic() > deadline:
                return [*failures, f"clients still running after {timeout:.0f} s"]
            dead = [p for p in processes if p.exitcode not in (None, 0)]
            # Died without a word (killed, out of memory): give the queue a
            # moment, then stop waiting for it.
            if dead and results.empty():
                time.sleep(1.0)
                if results.empty():
                    return [
                        *failures,
                        f"{dead[0].name} exited with code {dead[0].exitcode}",
                    ]
            continue
        if ok:
            collected[index] = payload
        else:
            failures.append(f"client {index} failed:\n{payload}")
    return failures


@dataclass(frozen=True)
class Finished:
    """How a child process ended, and the most memory it ever held."""

    returncode: int
    peak_rss_mb: float
    output: str


class MeasuredChild:
    """``python ARGUMENTS`` started through ``bench.measure_child``, so that
    its peak resident memory is its own (see that module), with its output
    in ``log``."""

    def __init__(
        self,
        arguments: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.arguments = list(arguments)
        self.log = log
        self.report = log.with_suffix(".rusage.json")
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.measure_child",
                    str(self.report),
                    "--",
                    sys.executable,
                    *self.arguments,
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=None if env is None else {**os.environ, **env},
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def failed(self) -> str | None:
        """Why it has ended, if it has."""
        code = self.process.poll()
        if code is None:
            return None
        command = " ".join(self.arguments)
        return f"{command} exited with {code}:\n{self.output()[-4000:]}"

    def stop(self) -> None:
        """Asks it to stop, as ``SIGTERM`` asks an ``eventshop worker``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> Finished:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        try:
            peak_kb = json.loads(self.report.read_text())["peak_rss_kb"]
        except (OSError, ValueError, KeyError):
            peak_kb = 0  # killed before it could say
        # ru_maxrss is in KiB on Linux.
        return Finished(self.process.returncode, peak_kb / 1024, self.output())


def run_measured(arguments: Sequence[str], *, timeout: float, log: Path) -> Finished:
    """Runs ``python ARGUMENTS`` to its end and measures it."""
    child = MeasuredChild(arguments, log)
    finished = child.wait(timeout)
    if finished.returncode != 0:
        raise WorkloadError(child.failed() or "")
    return finished


class WorkerProcesses:
    """``eventshop worker`` processes, one per group of subscriber names."""

    def __init__(
        self, database_url: str, groups: Sequence[Sequence[str]], logs: Path
    ) -> None:
        self.database_url = database_url
        self.groups = [list(group) for group in groups]
        self.logs = logs
        self.children: list[MeasuredChild] = []

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for group in self.groups:
            log = self.logs / f"worker-{time.monotonic_ns()}-{'-'.join(group)}.log"
            arguments = ["-m", "application.cli", "worker", *group]
            # By environment: a command line is anyone's to read, with its password.
            storage = {DATABASE_URL_VARIABLE: self.database_url}
            self.children.append(MeasuredChild(arguments, log, env=storage))

    def check(self) -> None:
        """Raises if a worker has exited while it should be running."""
        for child in self.children:
            if (failure := child.failed()) is not None:
                raise WorkloadError(f"a worker stopped early: {failure}")

    def stop(self) -> list[Finished]:
        """Stops every worker (cleanly, as ``SIGTERM`` asks them to) and
        returns how each ended."""
        for child in self.children:
            child.stop()
        finished = [child.wait(60) for child in self.children]
        self.children.clear()
        return finished


@contextmanager
def workers_running(
    database_url: str, groups: Sequence[Sequence[str]], logs: Path
) -> Iterator[WorkerProcesses]:
    workers = WorkerProcesses(database_url, groups, logs)
    workers.start()
    try:
        yield workers
    finally:
        if workers.children:
            workers.stop()


class Watch:
    """Calls ``probe`` every few milliseconds in a thread and notes the first
    moment it returned true (to time when a backlog's first reaction showed)."""

    def __init__(self, probe: Callable[[], bool], interval: float = 0.005) -> None:
        self.probe = probe
        self.interval = interval
        self.seen_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seen = False
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a busy database: ask again
                seen = self.probe()
            if seen:
                self.seen_at = time.monotonic()
                return
            time.sleep(self.interval)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
