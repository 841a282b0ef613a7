"""The process of its own in which an embedded shop hosts its subscribers.

Python runs one thread at a time per process: subscribers hosted in the
caller's threads take their CPU from its commands, and each write wakes them in
its path. So ``Shop()`` starts a helper process (``application.subscribers.helper_main``
is its entry point), which runs every subscriber (and the chain keepers) as a
worker process would, on another core, and stops it when the shop closes. The
payment-deadline ticker stays in the shop's process, with the shop's clock.

The helper's standard input is its line to the shop:

* first the shop's settings (pickled, after their length);
* then one byte per write the shop makes to a log whose other processes can
  only poll it (SQLite): the index of the service written to, so the helper's
  subscribers see it at once rather than at their next poll (PostgreSQL's
  NOTIFY reaches every process by itself);
* and its end: when the shop closes it, or its process dies however it dies,
  the helper stops its subscribers (each finishing its batch) and exits.

The helper is an instance like any other (one active instance per subscriber,
the others standing by); it reports its subscribers' states in the view store,
where ``wait_until_processed`` finds those that halted or failed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from eventsourcing.application import Application

from application.config import Settings
from application.persistence.subscriptions import LocalWrites

log = logging.getLogger(__name__)

STOP_SECONDS = 30.0
"""How long a closing shop waits for the helper to stop before killing it."""

# Imported, not run with ``-m``: a module run as ``__main__`` is a second copy
# of itself to whatever imports it by its name.
_ENTRY = "from application.subscribers.helper_main import main; main()"
_LENGTH_BYTES = 8
_FAILED_STATES = frozenset({"halted", "failed"})


class SubscriberProcessError(RuntimeError):
    """A subscriber in the helper process stopped on an error (what it reported)."""


class _PipeWaker:
    """Tells the helper that this process wrote to a service's log."""

    def __init__(self, pipe: int, index: int) -> None:
        self._pipe = pipe
        self._signal = bytes([index])

    def set(self) -> None:
        # A full pipe means the helper has plenty of wake-ups still to read; a
        # broken one, that it is gone (the shop learns that elsewhere).
        with contextlib.suppress(BlockingIOError, BrokenPipeError, OSError):
            os.write(self._pipe, self._signal)


def cannot_signal_other_processes(service: Application[Any]) -> bool:
    """Whether other processes find this service's writes only by polling."""
    return getattr(service.recorder, "poll_interval", None) is not None


class SubscriberProcess:
    """The shop's side of the helper process."""

    def __init__(
        self, settings: Settings, services: Mapping[str, Application[Any]]
    ) -> None:
        self._settings = settings
        self._services = services
        self._process: subprocess.Popen[bytes] | None = None
        self._wakers: list[tuple[Application[Any], _PipeWaker]] = []

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)
        paths = [package_root, *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        self._process = subprocess.Popen(
            [sys.executable, "-c", _ENTRY],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env=env,
            # Out of the caller's process group: a Ctrl-C meant for the caller
            # must not kill the helper under it; the closed line ends it.
            start_new_session=True,
        )
        stdin = self._process.stdin
        assert stdin is not None
        names = list(self._services)
        payload = pickle.dumps((self._settings, names))
        stdin.write(len(payload).to_bytes(_LENGTH_BYTES, "big") + payload)
        stdin.flush()
        pipe = stdin.fileno()
        flags = fcntl.fcntl(pipe, fcntl.F_GETFL)
        fcntl.fcntl(pipe, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        for index, service in enumerate(self._services.values()):
            if cannot_signal_other_processes(service):
                waker = _PipeWaker(pipe, index)
                service.recorder.wake_on_write(waker)  # type: ignore[attr-defined]
                self._wakers.append((service, waker))

    def failures(self, reports: Mapping[str, Sequence[Any]]) -> dict[str, Exception]:
        """The subscribers that halted or failed in the helper (by what they
        reported, freshest first per subscriber), or the helper itself if it
        is gone."""
        if self._process is None:
            return {}
        found: dict[str, Exception] = {}
        for name, instance_reports in reports.items():
            mine = [r for r in instance_reports if r.pid == self._process.pid]
            if mine and mine[0].state in _FAILED_STATES:
                summary = (mine[0].error or mine[0].state).splitlines()[0]
                found[name] = SubscriberProcessError(summary)
        code = self._process.poll()
        if code is not None:
            found["subscriber process"] = SubscriberProcessError(
                f"the subscriber process {self._process.pid} exited with {code}"
            )
        return found

    def stop(self) -> None:
        for service, waker in self._wakers:
            service.recorder.stop_waking(waker)  # type: ignore[attr-defined]
        self._wakers.clear()
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("subscriber process %s did not stop; killing it", process.pid)
            process.kill()
            process.wait()


# -- the helper's side of the line (its entry point: subscribers.helper_main)


def read_settings(stdin: IO[bytes]) -> tuple[Settings, list[str]]:
    length = int.from_bytes(stdin.read(_LENGTH_BYTES), "big")
    settings, names = pickle.loads(stdin.read(length))
    assert isinstance(settings, Settings)
    return settings, names


def relay_writes(stdin: IO[bytes], databases: Mapping[int, str]) -> None:
    """Passes the shop's write signals on to this process's readers of the
    logs, until the shop closes the line (or dies)."""
    pipe = stdin.fileno()
    while chunk := os.read(pipe, 4096):
        for index in set(chunk):
            database = databases.get(index)
            if database is not None:
                LocalWrites.written(database)
