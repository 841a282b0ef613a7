"""The baselines the harness compares with, on both engines."""

from __future__ import annotations

from pathlib import Path

from application.config import Settings
from application.shop import Shop
from bench.workloads.commands import PlainInventory, plain_env
from bench.workloads.common import read_limit
from bench.workloads.raw_inserts import raw_audit_inserts
from domain.inventory import InventoryItem
from projections.audit.indexes import InventoryAudit
from projections.store.comparison import checksums


def test_the_read_limit_reads_and_decodes_the_whole_log(shop: Shop) -> None:
    for number in range(7):
        shop.register_product(f"READ-{number}", "read", "1.00")
        shop.receive_stock(f"READ-{number}", 3)
    limit = read_limit(shop.inventory, page=5)
    assert limit.notifications == shop.log_heads()["Inventory"] == 14


def test_the_plain_application_stores_beside_the_shop(settings: Settings) -> None:
    url = settings.database_url()
    env = plain_env(url)
    assert env["PERSISTENCE_MODULE"].startswith("eventsourcing.")
    item = InventoryItem.register("PLAIN-1", "plain", "1.00")
    writer = PlainInventory(env=env)
    try:
        writer.save(item)
    finally:
        writer.close()
    reader = PlainInventory(env=env)
    try:
        loaded: InventoryItem = reader.repository.get(item.id)
    finally:
        reader.close()
    assert loaded.sku == "PLAIN-1"
    with Shop(database_url=url, subscribers="workers") as shop:
        assert shop.log_heads()["Inventory"] == 0


def test_the_raw_insert_floor_writes_every_row_the_audit_index_holds(
    settings: Settings, tmp_path: Path
) -> None:
    # given an index that has followed a log of items created, stocked,
    # reserved and released (the saga running)
    with Shop(settings=settings) as shop:
        for number in range(3):
            sku = f"FLOOR-{number}"
            shop.register_product(sku, "floor", "1.00")
            shop.receive_stock(sku, 5)
        cart_id = shop.open_cart("floor customer")
        shop.add_to_cart(cart_id, "FLOOR-1", 2)
        order_id = shop.checkout(cart_id)
        shop.wait_until_processed(timeout=60)
        shop.cancel_order(order_id)
        shop.wait_until_processed(timeout=60)

        # when the floor writes the index's rows by hand
        floor, written = raw_audit_inserts(
            shop.inventory,
            InventoryAudit,
            settings.engine,
            postgres_url=settings.database_url().split("?")[0],
            scratch=tmp_path,
        )

        # then it wrote as many rows to each table as the index holds: it
        # leaves out none of the index's work
        generation = shop.views.registry.active(InventoryAudit).generation
        with shop.views.engine.connect() as connection:
            stored = checksums(InventoryAudit, generation, connection)
        assert floor.notifications == shop.log_heads()["Inventory"] > 6
        assert written == {name: count for name, (count, _) in stored.items()}
        assert written[InventoryAudit.events] == floor.notifications
