"""A subscriber that is behind works in batches; status and topology tell the truth."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import event

from application.cli import main
from application.config import Batching, Settings
from application.shop import Shop
from application.subscribers.hosting import declared_subscribers
from application.subscribers.status import (
    subscriber_statuses,
    topology,
    topology_mermaid,
)
from domain.inventory import InventoryItem
from tests.projections.runner_testing import stock_rows


@pytest.fixture
def shop(settings: Settings) -> Iterator[Shop]:
    with Shop(settings=settings, subscribers="workers") as shop:
        yield shop


@pytest.mark.parametrize(("max_events", "batches"), [(500, 3), (2_000, 1)])
def test_a_subscriber_that_is_behind_applies_many_events_per_transaction(
    settings: Settings, max_events: int, batches: int
) -> None:
    # given 1,200 stock events the stock projection has not seen
    batched = replace(settings, batching=Batching(max_events=max_events))
    with Shop(settings=batched, subscribers="workers") as shop:
        item = InventoryItem.register("BATCH-1", "batched", "1.00")
        for _ in range(1_199):
            item.receive(1)
        shop.inventory.save(item)
        stock_position_moves: list[str] = []

        def count(
            _connection: object,
            _cursor: object,
            statement: str,
            parameters: object,
            _context: object,
            _executemany: bool,
        ) -> None:
            # Each batch moves the subscriber's tracking row exactly once.
            writes = statement.lstrip().upper().startswith(("INSERT", "UPDATE"))
            tracking = "eventshop_tracking" in statement
            if writes and tracking and "stock@g1" in str(parameters):
                stock_position_moves.append(statement)

        # when its runner catches up, taking up to max_events per batch
        event.listen(shop.views.engine, "after_cursor_execute", count)
        shop.subscribers.start()
        shop.wait_until_processed(timeout=60)
        shop.subscribers.stop()

        # then it moved its position once per batch, not per event
        assert stock_rows(shop.views)[0].on_hand == 1_199
        assert len(stock_position_moves) == batches


def test_status_shows_position_head_lag_and_state(shop: Shop) -> None:
    # given events written while no subscriber runs
    shop.register_product("LAG-1", "lagging", "1.00")
    shop.receive_stock("LAG-1", 5)

    # when status is read
    statuses = {
        status.name: status
        for status in subscriber_statuses(
            shop.subscribers.subscribers, shop.services, shop.views.reports.all()
        )
    }

    # then the stock subscriber is two events behind and not running
    stock = statuses["stock"]
    assert (stock.position, stock.head, stock.lag_events) == (0, 2, 2)
    assert stock.lag_seconds is not None
    assert stock.lag_seconds >= 0
    assert not stock.running
    assert stock.state == "never started"

    # when it runs and catches up, then it has no lag and runs
    shop.subscribers.start()
    shop.wait_until_processed(timeout=30)
    after = {
        status.name: status
        for status in subscriber_statuses(
            shop.subscribers.subscribers, shop.services, shop.views.reports.all()
        )
    }["stock"]
    shop.subscribers.stop()
    assert (after.position, after.lag_events, after.lag_seconds) == (2, 0, None)
    assert after.running
    assert after.state == "running"


def test_topology_maps_every_handled_event_type_to_its_subscribers() -> None:
    subscribers = declared_subscribers()
    mapping = topology(subscribers)
    assert "stock" in mapping["InventoryItem.StockReserved"]
    handled = {name for names in mapping.values() for name in names}
    assert handled == {subscriber.name for subscriber in subscribers}
    mermaid = topology_mermaid(subscribers)
    assert mermaid.startswith("flowchart LR")
    assert "svc_Inventory --> ev_InventoryItem_StockReserved" in mermaid


def test_the_status_and_topology_commands_run(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = ["--database-url", settings.database_url()]
    assert main(["status", *storage]) == 0
    assert main(["topology"]) == 0
    assert main(["topology", "--mermaid"]) == 0
    output = capsys.readouterr().out
    assert "stock" in output
    assert "flowchart LR" in output
