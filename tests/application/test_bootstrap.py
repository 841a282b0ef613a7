"""The composition root (``application.bootstrap``): the graph it builds from
the settings, what it starts as ``hosting`` says, the clock it hands the
ticker, and what ``close`` releases (PostgreSQL connections as the server
counts them, SQLite files as this process holds them open)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import inspect

from application import bootstrap as bootstrap_module
from application.bootstrap import (
    SERVICE_CLASSES,
    bootstrap,
    open_services,
    open_stores,
    open_views,
)
from application.config import Settings
from application.services import Carts, Inventory, Orders
from application.subscribers.hosting import declared_subscribers
from domain.errors import InvalidInputError
from tests.conftest import POSTGRES_URL, postgres_url

SETTLE_SECONDS = 10.0


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SETTLE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def connections_of_this_process() -> frozenset[int]:
    """The server's backend pids of the eventshop connections this process has
    open (every one is named ``eventshop:<role>:<pid>``). Pids, not a count:
    a connection an earlier test left to the garbage collector may close
    while this test runs, and must not hide one this test leaves open."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s",
            (f"eventshop:%:{os.getpid()}",),
        ).fetchall()
    return frozenset(row[0] for row in rows)


def files_open_under(folder: Path) -> list[str]:
    """The files under ``folder`` this process has open (Linux's /proc)."""
    fds = Path("/proc/self/fd")
    opened = []
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed since it was listed
        if target.startswith(str(folder.resolve())):
            opened.append(target)
    return opened


class RecordingClock:
    """A fixed time, and how often it was asked for it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return self.now


class TestBuildingAShopFromItsSettings:
    def test_every_part_is_there_and_wired_to_the_others(
        self, settings: Settings
    ) -> None:
        with bootstrap(settings, hosting="workers") as parts:
            assert isinstance(parts.carts, Carts)
            assert isinstance(parts.orders, Orders)
            assert isinstance(parts.inventory, Inventory)
            assert parts.services == {
                "Carts": parts.carts,
                "Orders": parts.orders,
                "Inventory": parts.inventory,
            }
            assert parts.queries.store is parts.views
            assert parts.payment_deadlines.orders is parts.orders
            assert parts.payment_deadlines.views is parts.views
            assert parts.subscribers.services is parts.services
            assert parts.subscribers.store is parts.views
            assert [s.name for s in parts.subscribers.subscribers] == [
                spec.name for spec in declared_subscribers()
            ]
            # The dead letters know every subscriber the shop has, and no other.
            for spec in declared_subscribers():
                assert parts.dead_letters.list(subscriber=spec.name) == ()
            with pytest.raises(InvalidInputError):
                parts.dead_letters.list(subscriber="no_such_subscriber")

    def test_the_services_share_the_settings_given(self, settings: Settings) -> None:
        with bootstrap(settings, hosting="workers") as parts:
            assert parts.settings is settings
            for service in parts.services.values():
                assert service.settings is settings

    def test_the_parts_read_and_write_one_store(self, settings: Settings) -> None:
        with bootstrap(settings, hosting="threads") as parts:
            parts.inventory.register_product("TEA-1", "Tea", "3.50")
            parts.inventory.receive_stock("TEA-1", 5)
            parts.subscribers.wait_until_processed()
            # What the services wrote, the subscribers projected into the
            # views the queries and the audit read.
            level = parts.queries.stock_level("TEA-1")
            assert level is not None
            assert level.on_hand == 5
            movements = parts.audit.stock_movements("TEA-1")
            assert [movement.on_hand for movement in movements][-1] == 5


class TestClosingAShop:
    @pytest.mark.postgres
    def test_no_connection_of_this_process_is_left_on_postgresql(
        self, postgres_schema: str
    ) -> None:
        before = connections_of_this_process()
        parts = bootstrap(
            Settings.from_url(postgres_url(postgres_schema)), hosting="workers"
        )
        try:
            parts.inventory.register_product("TEA-1", "Tea", "3.50")
            assert parts.views.reports.all() == {}
            assert connections_of_this_process() - before
        finally:
            parts.close()
        eventually(
            lambda: not connections_of_this_process() - before,
            "connections left open after close()",
        )

    def test_no_file_under_the_data_folder_is_left_open_on_sqlite(
        self, tmp_path: Path
    ) -> None:
        data_dir = tmp_path / "data"
        parts = bootstrap(Settings.from_url(data_dir=data_dir), hosting="workers")
        try:
            parts.inventory.register_product("TEA-1", "Tea", "3.50")
            assert parts.views.reports.all() == {}
            assert files_open_under(data_dir)
        finally:
            parts.close()
        assert files_open_under(data_dir) == []

    def test_a_part_that_fails_to_build_leaves_nothing_open(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        data_dir = tmp_path / "data"

        def refuse(*_: object) -> None:
            assert files_open_under(data_dir)  # the stores were open by now
            raise RuntimeError("cannot build the subscribers")

        monkeypatch.setattr(bootstrap_module, "Subscribers", refuse)
        with pytest.raises(RuntimeError, match="cannot build"):
            bootstrap(Settings.from_url(data_dir=data_dir), hosting="workers")
        assert files_open_under(data_dir) == []

    def test_stores_opened_alone_are_released_too(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "data"
        with open_stores(Settings.from_url(data_dir=data_dir)) as stores:
            stores.services["Carts"].log_head()
            stores.views.reports.all()
            assert files_open_under(data_dir)
        assert files_open_under(data_dir) == []


class TestInjectingAClock:
    def test_the_ticker_judges_deadlines_by_the_clock_given(
        self, settings: Settings
    ) -> None:
        clock = RecordingClock()
        with bootstrap(settings, hosting="workers", clock=clock) as parts:
            assert parts.payment_deadlines.fire_due() == []
        assert clock.calls == 1

    def test_the_ticker_the_subscribers_run_is_the_one_given_the_clock(
        self, settings: Settings
    ) -> None:
        clock = RecordingClock()
        with bootstrap(settings, hosting="workers", clock=clock) as parts:
            runner = parts.subscribers.deadline_runner
            assert runner is not None
            assert runner.tick == parts.payment_deadlines.fire_due
            assert parts.payment_deadlines.clock is clock


class TestLeavingSubscribersToWorkers:
    def test_workers_hosting_starts_no_runner_and_no_thread(
        self, settings: Settings
    ) -> None:
        threads_before = set(threading.enumerate())
        with bootstrap(settings, hosting="workers") as parts:
            assert parts.subscribers.runners == []
            assert parts.subscribers.helper is None
            runner = parts.subscribers.deadline_runner
            assert runner is not None
            assert not runner.is_alive
            # (Connection pools may start threads of their own: not these.)
            started = set(threading.enumerate()) - threads_before
            assert [
                thread.name
                for thread in started
                if thread.name.startswith(("subscriber ", "chain ", runner.name))
            ] == []
            # Nothing reported in from anywhere: nothing runs.
            assert parts.views.reports.all() == {}

    def test_threads_hosting_runs_every_subscriber_here_until_closed(
        self, tmp_path: Path
    ) -> None:
        settings = Settings.from_url(data_dir=tmp_path / "data")
        parts = bootstrap(settings, hosting="threads")
        try:
            assert len(parts.subscribers.runners) == len(declared_subscribers())
            assert all(runner.is_alive for runner in parts.subscribers.runners)
            parts.subscribers.wait_until_started()
        finally:
            parts.close()
        assert not any(runner.is_alive for runner in parts.subscribers.runners)


class TestOpeningPartOfTheGraph:
    def test_only_the_services_named_are_opened(self, tmp_path: Path) -> None:
        services = open_services(Settings.from_url(data_dir=tmp_path), ["Orders"])
        try:
            assert list(services) == ["Orders"]
        finally:
            for service in services.values():
                service.close()

    def test_every_service_in_order_when_none_is_named(self, tmp_path: Path) -> None:
        services = open_services(Settings.from_url(data_dir=tmp_path))
        try:
            assert list(services) == [service.name for service in SERVICE_CLASSES]
        finally:
            for service in services.values():
                service.close()

    def test_an_unknown_service_is_refused_naming_the_known(
        self, tmp_path: Path
    ) -> None:
        with pytest.raises(LookupError, match=r"Shipping.*known: Carts, Orders"):
            open_services(Settings.from_url(data_dir=tmp_path), ["Shipping"])

    def test_the_view_store_opens_with_its_schema(self, settings: Settings) -> None:
        views = open_views(settings)
        try:
            assert inspect(views.engine).get_table_names(schema=None)
        finally:
            views.engine.dispose()
