"""The database restarts, or goes away for a while, under a shop taking
checkouts: no subscriber, worker process, ticker or chain keeper gives up.
Once the database is back every checkout settles (its order placed and decided
exactly once, stock conserved), every subscriber catches up, and no worker
process has exited.

On a private cluster (tests/support/private_postgres.py): these tests restart
and stop it, never the shared server.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Literal

import psycopg
import pytest
from psycopg import sql

from application import Settings, Shop
from application.demo.invariants import check_invariants
from application.subscribers.hosting import worker_groups
from application.subscribers.status import subscriber_statuses
from domain.errors import StorageUnavailableError
from tests.projections.runner_testing import eventually
from tests.support.private_postgres import PrivateCluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SKUS = ("RESTART-1", "RESTART-2", "RESTART-3")
# Little enough that some checkouts are rejected: both outcomes of the saga.
STOCK = 40
CLIENTS = 2
# Short, so that a command caught by the outage fails soon and its client
# moves on; the workers get the same (by environment).
COMMAND_TIMEOUT = 2.0
CONNECT_TIMEOUT = 2.0
# What "nothing hangs" means once the database is back: each part waits at
# most a second between tries (budget.backoff), plus a connect timeout; the
# rest is a loaded machine catching up on the checkouts of the run.
SETTLE_SECONDS = 90.0

RESTARTS = 3
STOP_SECONDS = 3.0
"""The quick variant's outage; the long one's is 20 s."""

Hosting = Literal["workers", "embedded"]


@pytest.fixture
def settings(cluster: PrivateCluster) -> Iterator[Settings]:
    """A schema of the test's own on the private cluster, which is up."""
    cluster.ensure_up()
    schema = f"restart_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield replace(
        Settings.from_url(f"{cluster.url}?schema={schema}"),
        connect_timeout_seconds=CONNECT_TIMEOUT,
        command_timeout_seconds=COMMAND_TIMEOUT,
    )
    cluster.ensure_up()


def start_worker(
    settings: Settings, names: list[str], output: IO[bytes]
) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.child_environment(), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "application.cli", "worker", *names],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )


@dataclass
class Workers:
    """``eventshop worker`` processes, their output in files."""

    settings: Settings
    folder: Path
    processes: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)
    _files: list[IO[bytes]] = field(default_factory=list)

    def start(self, names: list[str]) -> subprocess.Popen[bytes]:
        output = self.folder / f"worker-{len(self.processes)}.log"
        file = output.open("wb")
        self._files.append(file)
        process = start_worker(self.settings, names, file)
        self.processes.append((process, output))
        return process

    def exited(self) -> list[str]:
        return [
            f"worker {process.pid} exited {process.returncode}:\n"
            + "\n".join(output.read_text(errors="replace").splitlines()[-30:])
            for process, output in self.processes
            if process.poll() is not None
        ]

    def stop(self) -> list[int | None]:
        """SIGTERM to each; their exit codes (None: killed after 30 s)."""
        codes: list[int | None] = []
        for process, _ in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.processes:
            try:
                codes.append(process.wait(30))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                codes.append(None)
        for file in self._files:
            file.close()
        return codes


@contextmanager
def hosted(
    settings: Settings, hosting: Hosting, folder: Path
) -> Iterator[tuple[Shop, Workers]]:
    """A shop, with its subscribers in ``eventshop worker`` processes or in
    its embedded helper process."""
    folder.mkdir(parents=True, exist_ok=True)
    workers = Workers(settings, folder)
    with Shop(settings=settings, subscribers=hosting) as shop:
        try:
            if hosting == "workers":
                for names in worker_groups():
                    workers.start(names)
            yield shop, workers
        finally:
            codes = workers.stop()
        assert set(codes) <= {0}, (codes, workers.exited())


class Clients:
    """Customers checking out one cart after another, in threads, until
    stopped; a command the outage fails is given up (the customer walks away:
    whatever it stored stays as it is, and the checks cover all of it)."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.stopping = threading.Event()
        self.checkouts = 0
        self.failed_commands = 0
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(client,), daemon=True)
            for client in range(CLIENTS)
        ]
        self.errors: list[BaseException] = []

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in self._threads)
        assert self.errors == []

    def _run(self, client: int) -> None:
        rng = random.Random(client)
        number = 0
        while not self.stopping.is_set():
            number += 1
            customer = f"restart-{client}-{number}"
            try:
                cart_id = self.shop.open_cart(customer)
                for sku in rng.sample(SKUS, rng.randint(1, 2)):
                    self.shop.add_to_cart(cart_id, sku, rng.randint(1, 2))
                self.shop.checkout(cart_id)
            except StorageUnavailableError:
                with self._lock:
                    self.failed_commands += 1
                continue
            except BaseException as error:
                self.errors.append(error)
                return
            with self._lock:
                self.checkouts += 1

    def wait_for_more(self, count: int, timeout: float = 60.0) -> None:
        """Until ``count`` more checkouts than now have gone through."""
        wanted = self.checkouts + count
        eventually(
            lambda: self.checkouts >= wanted or bool(self.errors),
            timeout,
            f"{count} more checkouts",
        )
        assert self.errors == []


def stock_up(shop: Shop) -> None:
    for sku in SKUS:
        shop.register_product(sku, f"restart {sku}", "1.00")
        shop.receive_stock(sku, STOCK)


def all_running(shop: Shop) -> bool:
    return all(
        status.running
        for status in subscriber_statuses(
            shop.subscribers.subscribers, shop.services, shop.views.reports.all()
        )
    )


def assert_settled(shop: Shop, workers: Workers, clients: Clients) -> None:
    """Every checkout settled exactly once, stock conserved, views equal to a
    rebuild, every subscriber running and caught up, no worker exited."""
    assert workers.exited() == []
    shop.wait_until_processed(timeout=SETTLE_SECONDS)
    checks = check_invariants(shop)
    assert [(check.name, check.detail) for check in checks if not check.ok] == []
    statuses = subscriber_statuses(
        shop.subscribers.subscribers, shop.services, shop.views.reports.all()
    )
    assert [(s.name, s.lag_events) for s in statuses if s.lag_events] == []
    eventually(lambda: all_running(shop), SETTLE_SECONDS, "every subscriber to run")
    assert shop.dead_letters.list() == ()
    assert workers.exited() == []
    assert clients.checkouts > 0


def run_through(
    settings: Settings,
    hosting: Hosting,
    folder: Path,
    outage: Callable[[], None],
    times: int = 1,
) -> None:
    """Checkouts before, during and after ``outage`` (``times`` times); then
    the checks."""
    with hosted(settings, hosting, folder) as (shop, workers):
        stock_up(shop)
        with Clients(shop) as clients:
            # Every subscriber running, checkouts going through, before the
            # outage.
            eventually(
                lambda: all_running(shop), SETTLE_SECONDS, "every subscriber to run"
            )
            clients.wait_for_more(5)
            for _ in range(times):
                outage()
                assert workers.exited() == []
                clients.wait_for_more(5)
        assert_settled(shop, workers, clients)


@pytest.mark.parametrize(
    "hosting",
    # The embedded helper process hosts the same runners as the workers do:
    # its variant runs with the long ones.
    ["workers", pytest.param("embedded", marks=pytest.mark.long)],
)
def test_a_restart_mid_run_kills_no_subscriber(
    settings: Settings, cluster: PrivateCluster, hosting: Hosting, tmp_path: Path
) -> None:
    # A restart takes about a second: one may fall where every runner is
    # between two touches of the database; three rarely all do.
    run_through(
        settings, hosting, tmp_path / "workers", cluster.restart, times=RESTARTS
    )


def stopped_for(cluster: PrivateCluster, seconds: float) -> Callable[[], None]:
    def outage() -> None:
        cluster.stop()
        # The outage itself: how long the database is gone, not a wait for
        # something to happen.
        time.sleep(seconds)
        cluster.start()
        cluster.wait_up()

    return outage


@pytest.mark.parametrize("hosting", ["workers", "embedded"])
def test_a_database_stopped_for_a_while_kills_no_subscriber(
    settings: Settings, cluster: PrivateCluster, hosting: Hosting, tmp_path: Path
) -> None:
    # Longer than a heartbeat (2 s): every idle runner touches the database
    # during the outage.
    outage = stopped_for(cluster, STOP_SECONDS)
    run_through(settings, hosting, tmp_path / "workers", outage)


@pytest.mark.long
@pytest.mark.parametrize("hosting", ["workers", "embedded"])
def test_a_database_stopped_for_twenty_seconds_kills_no_subscriber(
    settings: Settings, cluster: PrivateCluster, hosting: Hosting, tmp_path: Path
) -> None:
    run_through(settings, hosting, tmp_path / "workers", stopped_for(cluster, 20))


def test_a_worker_started_before_the_database_waits_for_it(
    settings: Settings, cluster: PrivateCluster, tmp_path: Path
) -> None:
    # given a store set up, and then its database stopped
    with Shop(settings=settings, subscribers="workers") as shop:
        stock_up(shop)
    cluster.stop()
    output = tmp_path / "worker.log"
    with output.open("wb") as file:
        # when a worker starts
        worker = start_worker(settings, ["stock"], file)
        try:
            # then it says what it waits for, and does not exit
            eventually(
                lambda: (
                    "waiting for the database" in output.read_text()
                    or worker.poll() is not None
                ),
                60,
                "the worker to wait for the database",
            )
            assert worker.poll() is None, output.read_text()
            # and once the database is up it runs the subscriber
            cluster.start()
            cluster.wait_up()
            with Shop(settings=settings, subscribers="workers") as shop:
                eventually(
                    lambda: any(
                        report.state == "running" and report.pid == worker.pid
                        for report in shop.views.reports.all().get("stock", [])
                    ),
                    SETTLE_SECONDS,
                    "the worker to run the stock subscriber",
                )
                shop.wait_until_processed(timeout=SETTLE_SECONDS, only=["stock"])
                assert shop.queries.stock_level(SKUS[0]) is not None
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(30)
    assert code == 0, output.read_text()
