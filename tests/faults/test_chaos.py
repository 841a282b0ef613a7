"""Chaos: a thousand checkouts (with payments, shipments, cancellations and
deliveries of stock) from several clients while ``eventshop worker``
processes are SIGKILLed and restarted, some of the kills aimed at the active
instance of a subscriber that has a standby, some at every instance of a
group of subscribers at once. Afterwards every checkout was
resolved exactly once and as its customer left it, stock is conserved per
SKU, every view equals a rebuild, the hash chains are intact, nothing is
parked and no subscriber lags. See ``chaos_workload`` for the parts."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol
from unittest.mock import patch

import pytest
from eventsourcing.persistence import OperationalError as StoreOperationalError

from application.audit.chain_verification import verify_chains
from application.cli import main as eventshop
from application.config import ALL_SUBSCRIBERS, PAYMENT_TIMEOUT_VARIABLE, Settings
from application.databases import Storage
from application.demo.invariants import check_invariants
from application.service_names import SERVICE_NAMES
from application.shop import Shop
from application.subscribers.status import subscriber_statuses
from tests.conftest import postgres_url, temporary_postgres_databases
from tests.faults.chaos_workload import (
    EXPIRED,
    INSTANCES,
    RELAY_GROUP_PREFIX,
    ChaosMonkey,
    ClientLog,
    Kill,
    KillSchedule,
    Worker,
    Workers,
    customers_for,
    merged,
    order_problems,
    outcome_counts,
    run_client,
    stock_problems,
    stock_up,
    summary,
    unexpired,
)
from tests.projections.runner_testing import eventually
from tests.support.private_nats import PrivateNats, private_nats

CLIENTS = 4
# Short, so that the orders left unpaid expire within the run (while the
# deadline ticker's worker is being killed too); long enough that most
# clients pay in time, kills and takeovers included.
PAYMENT_TIMEOUT_SECONDS = 5


class Monkey(Protocol):
    """What kills the processes of a run as its schedule says."""

    kills: list[Kill]
    error: BaseException | None

    def start(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


MonkeyFactory = Callable[[Shop, Workers, KillSchedule], Monkey]


def run_chaos(
    settings: Settings,
    folder: Path,
    *,
    checkouts: int,
    kills: int,
    instances: dict[str, int] = INSTANCES,
    monkey_for: MonkeyFactory | None = None,
    outcomes: Collection[str] = ("rejected", "shipped", "paid", "cancelled", EXPIRED),
) -> None:
    """Runs the workload against worker processes (which take the payment
    timeout from the environment), the workers' output in ``folder``, and
    checks the outcome. The kills are the chaos monkey's, unless
    ``monkey_for`` makes another."""
    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    workers = Workers(settings, folder, instances)
    with Shop(settings=settings, subscribers="workers") as shop:
        received = stock_up(shop)
        workers.start_all()
        schedule = KillSchedule(checkouts, kills)
        monkey: Monkey = (
            ChaosMonkey(shop, workers, schedule, seed=kills)
            if monkey_for is None
            else monkey_for(shop, workers, schedule)
        )
        try:
            monkey.start()
            customers = customers_for(checkouts)
            with ThreadPoolExecutor(CLIENTS) as clients:
                futures = [
                    clients.submit(
                        run_client,
                        shop,
                        client,
                        range(client, customers, CLIENTS),
                        schedule,
                    )
                    for client in range(CLIENTS)
                ]
                try:
                    logs: list[ClientLog] = [future.result() for future in futures]
                finally:
                    schedule.finish()
            monkey.join(120)
            assert monkey.error is None, f"the chaos monkey failed: {monkey.error!r}"
            workload_seconds = time.monotonic() - started
            record = merged(logs, received)

            # No worker exited by itself, and the kills happened as planned.
            exited = workers.exited_by_themselves()
            assert not exited, "\n\n".join(
                f"worker {w.pid} ({w.group}) exited {w.process.returncode}:\n"
                + w.tail()
                for w in exited
            )
            assert len(monkey.kills) >= kills, list(summary(monkey.kills))
            if isinstance(monkey, ChaosMonkey):
                aimed = [kill for kill in monkey.kills if kill.aimed_at]
                assert len(aimed) >= kills // 3

            # Every deadline fires; every subscriber is running and caught up.
            eventually(
                lambda: not unexpired(shop, record),
                PAYMENT_TIMEOUT_SECONDS + 60,
                "the payment deadlines of the orders left unpaid",
            )
            shop.wait_until_processed(timeout=120)
            statuses = subscriber_statuses(
                shop.subscribers.subscribers, shop.services, shop.views.reports.all()
            )
            assert [
                (s.name, s.state, s.lag_events) for s in statuses if s.lag_events
            ] == []
            assert [(s.name, s.state) for s in statuses if not s.running] == []
            with patch.dict(os.environ, settings.child_environment()):
                assert eventshop(["status"]) == 0
            eventually(
                lambda: all(
                    verdict.intact and verdict.unrecorded == 0
                    for verdict in verify_chains(settings, extend_first=False).values()
                ),
                30,
                "the chain keepers to chain the whole log",
            )
            # Every replacement came up (and has its signal handlers: a
            # SIGTERM before that would end it with -15, not a clean stop).
            eventually(
                lambda: len(workers.up(shop)) == len(workers.alive()),
                60,
                "every restarted worker to report",
            )
            codes = workers.stop_all()
            assert set(codes.values()) == {0}, codes
        finally:
            schedule.finish(aborted=True)
            workers.kill_all()

        # What the clients did is what the store holds.
        assert len(record.checkouts) == checkouts
        counts = outcome_counts(record)
        # The workload reached the branches of the saga it is meant to.
        assert set(outcomes) <= set(counts)
        assert order_problems(shop, record) == []
        assert stock_problems(shop, record) == []
        checks = check_invariants(shop, compare_views=False)
        assert [check.detail for check in checks if not check.ok] == []
        differing = [
            (report.projection, [t.table for t in report.tables if not t.agrees])
            for report in shop.rebuild("all", mode="verify")
            if not report.agrees
        ]
        assert differing == []
        verdicts = verify_chains(settings)
        assert {name: v.kind for name, v in verdicts.items() if not v.intact} == {}
        assert shop.dead_letters.list() == ()
    print(
        f"\n{settings.engine}: {len(record.checkouts)} checkouts {dict(counts)}, "
        f"{len(monkey.kills)} kills, workload {workload_seconds:.1f} s, "
        f"all {time.monotonic() - started:.1f} s"
    )
    print("\n".join(summary(monkey.kills)))


@pytest.fixture(autouse=True)
def _short_payment_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PAYMENT_TIMEOUT_VARIABLE, str(PAYMENT_TIMEOUT_SECONDS))


@pytest.mark.slow
def test_a_thousand_checkouts_survive_ten_worker_kills(
    settings: Settings, tmp_path: Path
) -> None:
    run_chaos(settings, tmp_path / "workers", checkouts=1000, kills=10)


@pytest.mark.long
def test_three_thousand_checkouts_survive_thirty_worker_kills(
    settings: Settings, tmp_path: Path
) -> None:
    run_chaos(settings, tmp_path / "workers", checkouts=3000, kills=30)


BROKER_RUN_INSTANCES = {
    "sagas": 2,
    "views": 1,
    "deadlines": 1,
    "audit": 1,
    **{f"{RELAY_GROUP_PREFIX}{service.lower()}": 1 for service in SERVICE_NAMES},
}
"""Every subscriber fed by the broker; one relay per service (killed, it is
started again at once)."""


class BrokerChaosMonkey(threading.Thread):
    """Kills, in turn, a relay and a broker-fed worker whenever the schedule
    says; at the middle of the run it restarts the NATS server instead."""

    def __init__(
        self, workers: Workers, schedule: KillSchedule, nats: PrivateNats
    ) -> None:
        super().__init__(name="broker chaos monkey", daemon=True)
        self.workers = workers
        self.schedule = schedule
        self.nats = nats
        self.rng = random.Random(len(schedule.due_at))
        self.kills: list[Kill] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            count = len(self.schedule.due_at)
            for index in range(count):
                self.schedule.wait_until_due(index)
                if self.schedule.aborted:
                    return
                if index == count // 2:
                    self.nats.stop()
                    time.sleep(1.0)
                    self.nats.start()
                    self.kills.append(Kill("nats-server", 0, None, None))
                else:
                    relays = index % 2 == 0
                    target = self.rng.choice(
                        [w for w in self.workers.alive() if _is_relay(w) == relays]
                    )
                    self.workers.kill_and_replace(target)
                    self.kills.append(Kill(target.group, target.pid, None, None))
                self.schedule.one_killed()
        except BaseException as error:
            self.error = error
            self.schedule.finish(aborted=True)


def _is_relay(worker: Worker) -> bool:
    return worker.group.startswith(RELAY_GROUP_PREFIX)


@pytest.mark.postgres
@pytest.mark.slow
def test_300_checkouts_survive_relay_and_worker_kills_and_a_broker_restart(
    postgres_schema: str, tmp_path: Path
) -> None:
    """Each service in a PostgreSQL database of its own, the views in a
    fourth, every subscriber fed by the broker: relays and workers SIGKILLed
    in turn, the NATS server restarted once mid-run."""
    with (
        temporary_postgres_databases(len(SERVICE_NAMES)) as urls,
        private_nats() as nats,
    ):
        settings = replace(
            Settings.from_url(postgres_url(postgres_schema)),
            own_storage={
                name: Storage.from_url(url)
                for name, url in zip(SERVICE_NAMES, urls, strict=True)
            },
            nats_url=nats.url,
            broker_fed=frozenset({ALL_SUBSCRIBERS}),
        )
        run_chaos(
            settings,
            tmp_path / "workers",
            checkouts=300,
            kills=9,
            instances=BROKER_RUN_INSTANCES,
            # Rejections need stock to run short, which 300 checkouts do only
            # by chance; the saga's tests through the broker reject for sure.
            outcomes=("shipped", "paid", "cancelled", EXPIRED),
            monkey_for=lambda shop, workers, schedule: BrokerChaosMonkey(
                workers, schedule, nats
            ),
        )
    # The broker's restart was felt, and waited out, by the processes.
    outputs = [log.read_text() for log in (tmp_path / "workers").glob("*.log")]
    assert any("waiting for the broker" in output for output in outputs)


@contextmanager
def first_insert_commit_unacknowledged(shop: Shop) -> Iterator[None]:
    """The first commit of the Orders service that stores events loses its
    acknowledgement: the events are stored, and the writer gets the
    ``OperationalError`` a server restarting at that moment gives."""
    recorder = shop.orders.recorder
    datastore = recorder.datastore  # type: ignore[attr-defined]
    real_connection = datastore.get_connection
    real_insert = recorder._insert_events  # type: ignore[attr-defined]
    inserting: list[bool] = []

    def insert_events(*args: Any, **kwargs: Any) -> Any:
        inserting.append(True)
        return real_insert(*args, **kwargs)

    @contextmanager
    def connection() -> Iterator[Any]:
        inserted_before = len(inserting)
        with real_connection() as opened:
            yield opened
        first_insert = inserted_before == 0 and len(inserting) > 0
        if first_insert:
            raise StoreOperationalError("server closed the connection unexpectedly")

    with (
        patch.object(datastore, "get_connection", connection),
        patch.object(recorder, "_insert_events", insert_events),
    ):
        yield


@pytest.mark.postgres
def test_a_payment_whose_commit_is_not_acknowledged_is_not_refused_for_itself(
    postgres_schema: str,
) -> None:
    """Found by the chaos run when the shared server restarted under it: the
    recorder retried a write whose commit had gone through, the duplicate
    looked like a lost race, and the command, re-run on the state it had
    written itself, refused itself ("cannot pay order ...: it is paid")."""
    # given a confirmed order
    settings = Settings.from_url(postgres_url(postgres_schema))
    with Shop(settings=settings, subscribers="threads") as shop:
        shop.register_product("ACK-1", "ack", "1.00")
        shop.receive_stock("ACK-1", 5)
        cart_id = shop.open_cart("ack-customer")
        shop.add_to_cart(cart_id, "ACK-1", 1)
        order_id = shop.checkout(cart_id)
        shop.wait_until_processed()
        assert shop.get_order(order_id).status == "confirmed"

        # when it is paid, and the commit's acknowledgement is lost
        with first_insert_commit_unacknowledged(shop):
            shop.pay_order(order_id)

        # then the payment stands, once
        history = list(shop.orders.events.get(order_id))
        assert [type(event).__name__ for event in history].count("Paid") == 1
