"""Rolling out a changed read model (a new column and a new rule: version 2) by
a shadow rebuild, while version 1 keeps serving and readers never miss a table."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    inspect,
    select,
)

from application.config import Settings
from application.shop import Shop
from application.subscribers.rebuild import ServiceEventSource
from application.subscribers.runner import SubscriberRunner
from domain.inventory import InventoryItem
from projections.batching.changes import Changes
from projections.read_model import generation_tables, handles, new_metadata
from projections.read_model_subscriber import ReadModelSubscriber
from projections.read_models.stock import StockLevels
from projections.shadow_rebuild import rebuild
from projections.store import ActiveGeneration, ViewStore, subscriber_name
from projections.store.engine import sqlite_engine
from tests.projections.runner_testing import eventually

SKUS = ("TEA-1", "MUG-1")


def _levels_with_units_received(metadata: MetaData) -> Table:
    levels = StockLevels.metadata.tables["stock_levels"].to_metadata(metadata)
    levels.append_column(
        Column("units_received", Integer, nullable=False, server_default="0")
    )
    return levels


class StockLevelsWithReceipts(StockLevels):
    """Version 2 of the stock view: also counts every unit ever received."""

    version = 2
    metadata = new_metadata()
    _levels_with_units_received(metadata)

    @handles(InventoryItem.Registered)
    def registered(self, changes: Changes, event: InventoryItem.Registered) -> None:
        super().registered(changes, event)
        changes["stock_levels"].update(event.originator_id, units_received=0)

    @handles(InventoryItem.StockReceived)
    def received(self, changes: Changes, event: InventoryItem.StockReceived) -> None:
        super().received(changes, event)
        changes["stock_levels"].add(event.originator_id, units_received=event.quantity)


@pytest.fixture
def shop(settings: Settings) -> Iterator[Shop]:
    """Version 1 of every read model, served by runners in this process."""
    with Shop(settings=settings, subscribers="threads") as opened:
        yield opened


def test_a_new_version_is_rolled_out_while_the_old_one_serves_readers(
    shop: Shop,
) -> None:
    store = shop.views
    source = ServiceEventSource(shop.inventory)
    # given version 1 serving readers, its runner live
    for sku in SKUS:
        shop.register_product(sku, f"product {sku}", "3.00")
        shop.receive_stock(sku, 5)
    shop.wait_until_processed()
    # and a runner of version 2 already started: it finds itself outdated
    new_code = ReadModelSubscriber(
        StockLevelsWithReceipts, store, outdated_retry_seconds=0.05
    )
    new_runner = SubscriberRunner(new_code, shop.inventory)
    new_runner.start()
    eventually(lambda: new_code.is_outdated, 10, "version 2 to find itself outdated")
    # and may not write to version 1's generation
    position = store.positions.position(subscriber_name(StockLevels, 1), "Inventory")
    assert not store.positions.apply(
        StockLevelsWithReceipts,
        1,
        [],
        expected_position=position,
        new_position=position or 0,
        only_if_active=True,
    )

    # and, all along, readers reading and customers receiving stock
    stop = threading.Event()
    reads = 0
    received: Counter[str] = Counter()
    failures: list[BaseException] = []

    def keep_reading() -> None:
        nonlocal reads
        try:
            while not stop.is_set():
                with store.registry.reading(StockLevels) as view:
                    levels = view.table("stock_levels")
                    rows = view.connection.execute(select(levels)).all()
                assert {row.sku for row in rows} == set(SKUS)
                reads += 1
        except BaseException as error:
            failures.append(error)

    def keep_writing() -> None:
        try:
            while not stop.is_set() and received.total() < 2_000:
                sku = SKUS[received.total() % 2]
                shop.receive_stock(sku, 1)
                received[sku] += 1
        except BaseException as error:
            failures.append(error)

    workers = [
        threading.Thread(target=keep_reading),
        threading.Thread(target=keep_writing),
    ]
    for worker in workers:
        worker.start()
    try:
        eventually(
            lambda: reads > 0 and received.total() > 10, 10, "readers and writers"
        )

        # when version 2 is built in the shadow and switched to
        report = rebuild(
            store, StockLevelsWithReceipts, source, mode="switch", batch_size=50
        )
        reads_at_switch = reads
        eventually(lambda: reads > reads_at_switch + 3, 10, "reads after the switch")
    finally:
        stop.set()
        for worker in workers:
            worker.join()

    # then no reader ever failed, and version 2 serves them
    assert not failures
    assert report.switched
    assert report.versions_differ
    assert (report.live_version, report.version) == (1, 2)
    assert report.tables[0].live_checksum is None  # counted, not compared
    assert store.registry.active(StockLevels) == ActiveGeneration(report.generation, 2)
    with store.engine.connect() as connection:
        assert not inspect(connection).has_table("stock_levels_g1")

    # and version 2's runner took over, and version 1's stopped writing
    head = shop.log_heads()["Inventory"]
    new_generation = subscriber_name(StockLevelsWithReceipts, report.generation)
    eventually(
        lambda: store.positions.position(new_generation, "Inventory") == head,
        20,
        "version 2's runner to catch up",
    )
    assert not new_code.is_outdated
    assert new_runner.error is None
    old_code = ReadModelSubscriber(StockLevels, store, outdated_retry_seconds=0)
    position = old_code.position()
    assert old_code.is_outdated
    assert not old_code.process([], expected_position=position, new_position=head)
    assert store.positions.position(new_generation, "Inventory") == head
    [old_runner] = [r for r in shop.subscribers.runners if r.name == "stock"]
    assert old_runner.error is None

    # and the new column holds what the new rule says
    with store.registry.reading(StockLevelsWithReceipts) as view:
        levels = view.table("stock_levels")
        units_received = {
            row.sku: row.units_received
            for row in view.connection.execute(select(levels))
        }
    assert units_received == {sku: 5 + received[sku] for sku in SKUS}
    # and equals what version 2 builds from scratch
    new_runner.stop()
    new_runner.join()
    fresh = rebuild(store, StockLevelsWithReceipts, source, mode="verify")
    assert fresh.agrees
    assert fresh.position == head


def test_start_up_leaves_a_generation_of_another_version_alone(tmp_path: Path) -> None:
    # given generation 1 of the stock view, with a registry written before
    # projections had versions
    engine = sqlite_engine(tmp_path / "views.sqlite3")
    old_metadata = MetaData()
    old_registry = Table(
        "eventshop_generations",
        old_metadata,
        Column("projection", String(100), primary_key=True),
        Column("active", Integer, nullable=False),
        Column("switched_at", DateTime(timezone=True), nullable=False),
    )
    with engine.begin() as connection:
        old_metadata.create_all(connection)
        connection.execute(
            insert(old_registry).values(
                projection="stock", active=1, switched_at=datetime.now(UTC)
            )
        )
        for levels in generation_tables(StockLevels, 1).values():
            levels.create(connection)

    # when code of version 2 starts up on it
    store = ViewStore(engine, [StockLevelsWithReceipts])
    store.create_schema()

    # then the registry knows generation 1 as version 1's, and nothing changed
    assert store.registry.active(StockLevelsWithReceipts) == ActiveGeneration(1, 1)
    with engine.connect() as connection:
        columns = {
            column["name"]
            for column in inspect(connection).get_columns("stock_levels_g1")
        }
    assert "units_received" not in columns
    engine.dispose()
