"""The baselines the harness compares with, on both engines."""

from __future__ import annotations

from application.config import Settings
from application.shop import Shop
from bench.workloads.commands import PlainInventory, plain_env
from bench.workloads.common import read_limit
from domain.inventory import InventoryItem


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
