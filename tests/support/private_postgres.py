"""A PostgreSQL cluster of a test's own, for tests that restart or stop the
database: never the shared server other tests (and CI's other jobs) use.

``initdb`` into a temporary folder, a free port on 127.0.0.1, trust auth. The
server binaries run as the ``postgres`` system user when the tests run as root
(PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import pytest

from bench.ports import free_port


def _binaries() -> Path | None:
    for version_dir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (version_dir / "initdb").exists():
            return version_dir
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PrivateCluster:
    """One private server: ``url`` to connect, ``restart``/``stop``/``start``."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.data_dir = root / "data"
        self.log_file = root / "server.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = (
            ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        )

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as_postgres, str(self.bin_dir / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def initdb(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.data_dir} -c fsync=off "
            "-c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def is_up(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def ensure_up(self) -> None:
        """Starts the cluster if it is down (a test before stopped it, or
        failed while it was stopped), and waits for it to answer."""
        if not self.is_up():
            self.start()
            self.wait_up()

    def wait_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_up():
            if time.monotonic() > deadline:
                raise TimeoutError(f"private cluster on port {self.port} did not start")
            time.sleep(0.1)


@contextmanager
def private_postgres() -> Iterator[PrivateCluster]:
    """A started private cluster, stopped and deleted at the end of the block;
    skips the test when the PostgreSQL server binaries are not installed."""
    bin_dir = _binaries()
    if bin_dir is None:
        reason = "PostgreSQL server binaries (initdb) are not installed"
        if os.environ.get("EVENTSHOP_TEST_POSTGRES") == "required":
            pytest.fail(f"EVENTSHOP_TEST_POSTGRES=required but {reason}", pytrace=False)
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="eventshop-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = PrivateCluster(bin_dir, root)
    try:
        cluster.initdb()
        cluster.start()
        cluster.wait_up()
        yield cluster
    finally:
        with suppress(subprocess.CalledProcessError):  # already stopped by the test
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
