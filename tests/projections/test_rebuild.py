"""Rebuilding a read model from the event log: shadow tables, comparison at one
position, atomic switch-over, and the ``eventshop rebuild`` command."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import (
    Connection,
    any_,
    column,
    delete,
    func,
    insert,
    inspect,
    select,
    table,
    update,
)

from application.bootstrap import open_views
from application.cli import main
from application.config import Settings
from application.shop import Shop
from application.subscribers.rebuild import ServiceEventSource, rebuild_projection
from domain.values import inventory_item_id
from projections.read_model import generation_tables
from projections.read_models.stock import StockLevels
from projections.shadow_rebuild import RebuildError, RebuildStep, rebuild
from projections.store import ActiveGeneration, ViewStore, subscriber_name
from projections.store.comparison import RowDifference
from tests.projections.runner_testing import eventually

TEA, MUG, JAM = "TEA-1", "MUG-1", "JAM-1"


@pytest.fixture
def shop(settings: Settings) -> Iterator[Shop]:
    """A shop whose subscribers run in this process, so the live generation
    keeps moving while a rebuild runs."""
    with Shop(settings=settings, subscribers="embedded") as opened:
        yield opened


def stock(store: ViewStore) -> dict[str, tuple[Any, ...]]:
    """What readers see of the stock levels, by SKU."""
    with store.registry.reading(StockLevels) as view:
        levels = view.table("stock_levels")
        return {row.sku: tuple(row) for row in view.connection.execute(select(levels))}


def table_exists(store: ViewStore, name: str) -> bool:
    with store.engine.connect() as connection:
        return inspect(connection).has_table(name)


def stocked_shop(shop: Shop) -> Shop:
    for sku in (TEA, MUG, JAM):
        shop.register_product(sku, f"product {sku}", "2.50")
        shop.receive_stock(sku, 10)
    shop.adjust_stock(MUG, 7, "two broke")
    shop.wait_until_processed()
    return shop


def corrupt(store: ViewStore) -> None:
    """Damages the live stock view behind the projection's back: a changed
    row (TEA), a missing one (MUG) and one no event explains."""
    levels = store.registry.active_tables(StockLevels)["stock_levels"]
    with store.writer.begin() as connection:
        connection.execute(
            update(levels).where(levels.c.sku == TEA).values(on_hand=999)
        )
        connection.execute(delete(levels).where(levels.c.sku == MUG))
        connection.execute(
            insert(levels).values(
                item_id=UUID(int=7),
                sku="GHOST-1",
                name="nobody registered this",
                price=1,
                on_hand=1,
                reserved=0,
                available=1,
                updated_at=select(levels.c.updated_at)
                .where(levels.c.sku == JAM)
                .scalar_subquery(),
            )
        )


def test_rebuilding_an_up_to_date_read_model_agrees_and_switches(shop: Shop) -> None:
    # given a stock view that is up to date
    stocked_shop(shop)
    seen_before = stock(shop.views)
    steps: list[RebuildStep] = []

    # when it is rebuilt
    [report] = shop.rebuild("stock", progress=steps.append)

    # then the new generation agrees with the old one, and readers were switched
    assert report.agrees
    assert report.switched
    assert (report.live_generation, report.generation) == (1, 2)
    assert report.position == report.log_head == shop.log_heads()["Inventory"]
    assert report.notifications_read == report.events_applied == 7
    [levels] = report.tables
    assert (levels.live_rows, levels.rebuilt_rows) == (3, 3)
    assert levels.live_checksum == levels.rebuilt_checksum
    assert shop.views.registry.active(StockLevels) == ActiveGeneration(2, 1)
    assert stock(shop.views) == seen_before
    # and the old generation is gone, tables and position
    assert report.dropped == (1,)
    assert not table_exists(shop.views, "stock_levels_g1")
    assert (
        shop.views.positions.position(subscriber_name(StockLevels, 1), "Inventory")
        is None
    )
    # and progress was told about every phase, ending at the position compared
    assert {step.phase for step in steps} >= {"replaying", "comparing", "done"}
    assert steps[-1] == RebuildStep("stock", "done", report.position, report.position)

    # and the live runner carries on in the new generation
    shop.receive_stock(TEA, 5)
    shop.wait_until_processed()
    assert stock(shop.views)[TEA][4] == 15


def test_verify_compares_without_switching_and_lists_the_rows_that_differ(
    shop: Shop,
) -> None:
    # given an up-to-date view, verify finds nothing and switches nothing
    stocked_shop(shop)
    [same] = shop.rebuild("stock", mode="verify")
    assert same.agrees
    assert not same.switched
    assert same.active_generation == 1
    assert shop.views.registry.active(StockLevels) == ActiveGeneration(1, 1)
    # and drops the generation it built for the comparison
    assert same.dropped == (2,)
    assert not table_exists(shop.views, "stock_levels_g2")
    assert (
        shop.views.positions.position(subscriber_name(StockLevels, 2), "Inventory")
        is None
    )

    # when someone edits the live view by hand
    corrupt(shop.views)
    [differs] = shop.rebuild("stock", mode="verify")

    # then verify names the rows that differ, and still switches nothing
    assert not differs.agrees
    assert not differs.switched
    [levels] = differs.tables
    assert (levels.live_rows, levels.rebuilt_rows) == (3, 3)
    assert levels.live_checksum != levels.rebuilt_checksum
    assert set(levels.differences) == {
        RowDifference((inventory_item_id(TEA),), "changed"),
        RowDifference((inventory_item_id(MUG),), "only in rebuilt"),
        RowDifference((UUID(int=7),), "only in live"),
    }
    # and lists no more of them than asked for
    fewer = rebuild(
        shop.views,
        StockLevels,
        ServiceEventSource(shop.inventory),
        mode="verify",
        max_differences=2,
    )
    assert len(fewer.tables[0].differences) == 2


def test_switch_if_equal_keeps_a_differing_view_and_switch_repairs_it(
    shop: Shop,
) -> None:
    stocked_shop(shop)
    corrupt(shop.views)
    corrupted = stock(shop.views)

    # when the default mode finds differences, nothing is switched
    [refused] = shop.rebuild("stock")
    assert not refused.switched
    assert shop.views.registry.active(StockLevels).generation == 1
    assert stock(shop.views) == corrupted
    assert not table_exists(shop.views, f"stock_levels_g{refused.generation}")

    # and a forced switch replaces the damaged view with the rebuilt one
    [forced] = shop.rebuild("stock", mode="switch")
    assert forced.switched
    assert not forced.agrees
    repaired = stock(shop.views)
    assert set(repaired) == {TEA, MUG, JAM}
    for sku, row in repaired.items():
        level = shop.get_stock(sku)
        assert row[4:7] == (level.on_hand, level.reserved, level.available)


def test_a_runner_cannot_write_to_a_generation_that_was_switched_away(
    shop: Shop,
) -> None:
    """What makes dropping the old tables right after a switch safe: a live
    batch for the old generation is refused, and writes nothing."""
    stocked_shop(shop)
    shop.subscribers.stop()
    store = shop.views
    live = subscriber_name(StockLevels, 1)
    position = store.positions.position(live, "Inventory")
    assert position is not None
    before = stock(store)
    # given readers switched to another generation (the old one not dropped yet)
    shadow = store.generations.reserve(StockLevels)
    with store.writer.begin() as connection:
        store.registry.switch(StockLevels, shadow, connection)
    shop.receive_stock(TEA, 1)
    [received] = shop.inventory.recorder.select_notifications(
        start=position, limit=1, inclusive_of_start=False
    )

    # when the old generation's runner hands in its next batch
    applied = store.positions.apply(
        StockLevels,
        1,
        [shop.inventory.mapper.to_domain_event(received)],
        expected_position=position,
        new_position=received.id,
        only_if_active=True,
    )

    # then it is refused, and neither the view nor the position moved
    assert not applied
    assert store.positions.position(live, "Inventory") == position
    levels = generation_tables(StockLevels, 1)["stock_levels"]
    with store.engine.connect() as connection:
        old_rows = {row.sku: tuple(row) for row in connection.execute(select(levels))}
    assert old_rows == before


def test_rebuild_catches_up_with_a_runner_that_keeps_moving(shop: Shop) -> None:
    # given commands arriving all the time, from another thread
    stocked_shop(shop)
    stop = threading.Event()
    commands = 0
    failures: list[BaseException] = []

    def keep_writing() -> None:
        nonlocal commands
        try:
            while not stop.is_set() and commands < 2_000:
                shop.receive_stock((TEA, MUG)[commands % 2], 1)
                if commands % 3 == 0:
                    shop.inventory.reserve(JAM, UUID(int=commands + 1), 1)
                    shop.inventory.release(JAM, UUID(int=commands + 1))
                commands += 1
        except BaseException as error:
            failures.append(error)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        eventually(lambda: commands >= 20, 10, "the writer to get going")
        live = next(s for s in shop.subscribers.subscribers if s.name == "stock")
        live_before = live.position() or 0

        # when the view is rebuilt meanwhile
        [report] = rebuild_projection(shop, "stock", batch_size=50)
    finally:
        stop.set()
        writer.join()
    assert not failures

    # then the rebuilt generation was compared at a position the live one had
    # reached (it lags the head, so not the head's), agreed, and took over
    assert report.position >= live_before
    assert report.agrees
    assert report.switched
    shop.wait_until_processed()
    # and what readers see is what the aggregates say
    seen = stock(shop.views)
    for sku in (TEA, MUG, JAM):
        level = shop.get_stock(sku)
        assert seen[sku][4:7] == (level.on_hand, level.reserved, level.available)


def test_a_first_batch_racing_a_switch_waits_for_it_then_writes_nothing(
    settings: Settings,
) -> None:
    """A live generation without a tracking row yet has no position to lock:
    the registry row is what orders a switch and a live batch."""
    store = open_views(settings)
    try:
        shadow = store.generations.reserve(StockLevels)
        results: list[bool] = []
        first_batch = threading.Thread(
            target=lambda: results.append(
                store.positions.apply(
                    StockLevels,
                    1,
                    [],
                    expected_position=None,
                    new_position=5,
                    only_if_active=True,
                )
            )
        )
        with store.writer.begin() as connection:
            store.registry.read(connection, StockLevels, lock="update")
            first_batch.start()
            if store.is_postgres:
                eventually(lambda: blocked_by(connection) == 1, 10, "the batch to wait")
            store.registry.switch(StockLevels, shadow, connection)
        first_batch.join()

        assert results == [False]
        assert (
            store.positions.position(subscriber_name(StockLevels, 1), "Inventory")
            is None
        )
    finally:
        store.engine.dispose()


def blocked_by(connection: Connection) -> int:
    """How many PostgreSQL sessions wait for a lock this connection holds."""
    # Activity statistics are a snapshot kept until the transaction ends,
    # unless cleared.
    connection.execute(select(func.pg_stat_clear_snapshot()))
    activity = table("pg_stat_activity", column("pid"))
    waiting: int = connection.execute(
        select(func.count())
        .select_from(activity)
        .where(func.pg_backend_pid() == any_(func.pg_blocking_pids(activity.c.pid)))
    ).scalar_one()
    return waiting


def test_a_rebuild_that_loses_the_switch_to_another_one_fails_cleanly(
    shop: Shop,
) -> None:
    stocked_shop(shop)
    source = ServiceEventSource(shop.inventory)
    store = shop.views
    other_rebuild_done = False

    def switch_meanwhile(step: RebuildStep) -> None:
        nonlocal other_rebuild_done
        if step.phase == "replaying" and not other_rebuild_done:
            other_rebuild_done = True
            rebuild(store, StockLevels, source, mode="switch")

    with pytest.raises(RebuildError, match="switched"):
        rebuild(store, StockLevels, source, progress=switch_meanwhile)

    # the loser dropped its shadow (2); the winner took the next number (3)
    # and its generation serves readers
    assert store.registry.active(StockLevels).generation == 3
    assert not table_exists(store, "stock_levels_g2")
    assert set(stock(store)) == {TEA, MUG, JAM}


def test_readers_keep_their_snapshot_while_the_generation_is_switched_and_dropped(
    shop: Shop,
) -> None:
    stocked_shop(shop)
    reports = []
    rebuilding = threading.Thread(target=lambda: reports.extend(shop.rebuild("stock")))

    with shop.views.registry.reading(StockLevels) as view:
        assert view.generation == 1
        rebuilding.start()
        eventually(
            lambda: shop.views.registry.active(StockLevels).generation == 2,
            20,
            "the switch to generation 2",
        )
        # on PostgreSQL the drop waits for this reader; on SQLite the reader's
        # snapshot still holds the dropped table
        rows = view.connection.execute(select(view.table("stock_levels"))).all()
    rebuilding.join()

    assert len(rows) == 3
    [report] = reports
    assert report.switched
    assert not table_exists(shop.views, "stock_levels_g1")


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings.from_url(data_dir=tmp_path / "data")


@pytest.fixture
def cli_shop_data(sqlite_settings: Settings) -> Settings:
    with Shop(settings=sqlite_settings, subscribers="embedded") as shop:
        stocked_shop(shop)
    return sqlite_settings


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeps rich from wrapping the report's sentences in captured output."""
    monkeypatch.setenv("COLUMNS", "200")


def test_the_rebuild_command_rebuilds_and_switches(
    cli_shop_data: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(cli_shop_data.data_dir)

    assert main(["rebuild", "stock", "--data-dir", data_dir]) == 0

    out = capsys.readouterr().out
    assert "built generation 2" in out
    assert "stock_levels" in out
    assert "switched" in out
    assert "events/s" in out


def test_the_rebuild_command_verifies_every_read_model_and_fails_on_differences(
    cli_shop_data: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(cli_shop_data.data_dir)
    assert main(["rebuild", "--all", "--verify", "--data-dir", data_dir]) == 0
    assert "same rows" in capsys.readouterr().out

    with Shop(settings=cli_shop_data, subscribers="workers") as shop:
        corrupt(shop.views)
    assert main(["rebuild", "--all", "--verify", "--data-dir", data_dir]) == 1
    out = capsys.readouterr().out
    assert "differences" in out
    assert "only in live" in out

    # the default mode refuses to switch to a generation that differs...
    assert main(["rebuild", "stock", "--data-dir", data_dir]) == 1
    assert "not switched" in capsys.readouterr().out
    # ...and --switch does it anyway
    assert main(["rebuild", "stock", "--switch", "--data-dir", data_dir]) == 0
    with Shop(settings=cli_shop_data, subscribers="workers") as shop:
        assert set(stock(shop.views)) == {TEA, MUG, JAM}


def test_the_rebuild_command_names_the_read_models_it_knows(
    sqlite_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["rebuild", "nope", "--data-dir", str(sqlite_settings.data_dir)])

    assert code == 2
    assert "stock" in capsys.readouterr().err
