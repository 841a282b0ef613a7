"""A NATS server with JetStream of a test's own: ``nats-server -js`` on a free
port of 127.0.0.1, storing into a temporary folder, which a test may stop and
start again on the same port (never the shared server on :4222).

When ``nats-server`` is not installed the test skips, or fails under
``EVENTSHOP_TEST_NATS=required`` (CI)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.ports import free_port

NATS_MODE_VARIABLE = "EVENTSHOP_TEST_NATS"


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
        deadline = time.monotonic() + 15
        while not self._answers():
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited ({self._process.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError("nats-server did not start in 15 s")
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
def private_nats(*, started: bool = True) -> Iterator[PrivateNats]:
    binary = shutil.which("nats-server")
    if binary is None:
        reason = "nats-server is not installed"
        if os.environ.get(NATS_MODE_VARIABLE) == "required":
            pytest.fail(f"{NATS_MODE_VARIABLE}=required but {reason}", pytrace=False)
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="eventshop-nats-") as store:
        server = PrivateNats(binary, Path(store))
        if started:
            server.start()
        try:
            yield server
        finally:
            server.stop()
