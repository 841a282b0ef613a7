"""A NATS server with JetStream of one's own: ``nats-server -js`` on a free
port of 127.0.0.1, storing into a temporary folder, which may be stopped and
started again on the same port. Never the shared server on :4222: what a
benchmark or a test publishes is thrown away with its folder.

The benchmark harness uses it as it is; the tests reach it through
``tests.support.private_nats``, which adds skipping when the binary is
missing (the harness does not import from ``tests``)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.ports import free_port

START_TIMEOUT_SECONDS = 15.0


def nats_server_binary() -> str | None:
    """Where ``nats-server`` is, or None if it is not on PATH."""
    return shutil.which("nats-server")


def nats_server_version(binary: str) -> str:
    """What ``nats-server --version`` says (``unknown`` if it says nothing)."""
    try:
        done = subprocess.run(
            [binary, "--version"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


class PrivateNats:
    def __init__(self, binary: str, store: Path) -> None:
        self.binary = binary
        self.store = store
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                self.binary,
                "-js",
                "-sd",
                str(self.store),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._answers():
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited ({self._process.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"nats-server did not start in {START_TIMEOUT_SECONDS:g} s"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False


@contextmanager
def running_nats(
    binary: str, *, started: bool = True, scratch: Path | None = None
) -> Iterator[PrivateNats]:
    """A server of ``binary`` storing into a new folder (under ``scratch``, or
    the system's temporary folder), started unless ``started`` is False;
    stopped and its folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="eventshop-nats-", dir=scratch) as store:
        server = PrivateNats(binary, Path(store))
        if started:
            server.start()
        try:
            yield server
        finally:
            server.stop()
