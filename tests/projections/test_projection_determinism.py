"""Every read model is a function of its event stream alone: fed the same events,
in batches of any size, two generations hold the same rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from application.bootstrap import open_views
from application.config import Settings
from domain.cart import Cart
from domain.inventory import InventoryItem
from projections.audit.indexes import AuditIndex
from projections.read_model import ReadModel
from projections.read_models.catalog import READ_MODELS
from projections.store import ViewStore
from projections.store.comparison import checksums
from tests.projections.projection_testing import (
    MUG,
    POT,
    TEA,
    Feeder,
    events_of,
    new_view_store,
    placed_order,
    shipped,
)


def cart_history() -> list[object]:
    checked_out = Cart.open("customer-1")
    checked_out.add_item(TEA, 2, "6.20")
    checked_out.add_item(MUG, 1, "12.50")
    checked_out.add_item(TEA, 1, "5.90")
    checked_out.change_quantity(MUG, 3)
    checked_out.check_out()
    abandoned = Cart.open("customer-2")
    abandoned.add_item(POT, 1, "48.00")
    abandoned.remove_item(POT)
    abandoned.add_item(MUG, 2, "12.50")
    abandoned.abandon()
    still_open = Cart.open("customer-1")
    still_open.add_item(TEA, 9, "6.20")
    return events_of(checked_out, abandoned, still_open)


def order_history() -> list[object]:
    due = datetime(2030, 1, 1, tzinfo=UTC)
    rejected = placed_order("customer-2", (POT, 5, "48.00"))
    rejected.reject([POT], "not enough stock")
    cancelled = placed_order("customer-1", (MUG, 1, "12.50"))
    cancelled.confirm(payment_due_at=due)
    cancelled.cancel("changed mind")
    paid = placed_order("customer-3", (TEA, 1, "6.20"))
    paid.confirm(payment_due_at=due)
    paid.pay()
    awaiting_payment = placed_order("customer-3", (MUG, 2, "12.50"))
    awaiting_payment.confirm(payment_due_at=due)
    return events_of(
        shipped(placed_order("customer-1", (TEA, 2, "6.20"), (MUG, 1, "12.50"))),
        rejected,
        cancelled,
        paid,
        placed_order("customer-2", (POT, 1, "48.00")),
        shipped(placed_order("customer-2", (TEA, 3, "5.90"))),
        awaiting_payment,
    )


def inventory_history() -> list[object]:
    tea = InventoryItem.register(TEA, "Sencha", "6.20")
    tea.receive(40)
    first, second = uuid4(), uuid4()
    tea.reserve(first, 2)
    tea.reserve(second, 5)
    tea.commit(first)
    tea.release(second)
    tea.adjust(30, "stock count")
    mug = InventoryItem.register(MUG, "Mug", "12.50")
    mug.receive(3)
    return events_of(tea, mug)


HISTORIES = {
    "Carts": cart_history,
    "Orders": order_history,
    "Inventory": inventory_history,
}


def test_every_log_a_projection_follows_has_a_history_here() -> None:
    # (Their names and order are pinned by tests/application/test_topology.py.)
    assert {projection.follows for projection in READ_MODELS} == set(HISTORIES)


def test_each_order_read_model_handles_only_order_events() -> None:
    # The audit index reads every event of the log (dead letters included).
    for projection in READ_MODELS:
        if projection.follows == "Orders" and not issubclass(projection, AuditIndex):
            assert all(
                # A forget rewrites the delivery details of the customer's orders.
                event_type.__qualname__.startswith(("Order.", "CustomerErasure."))
                for event_type in projection.event_types()
            )


@pytest.mark.parametrize("projection", READ_MODELS, ids=lambda p: p.name)
@pytest.mark.parametrize("batch_size", [2, 5, 1_000])
def test_batches_of_any_size_give_the_same_rows(
    tmp_path: Path, projection: type[ReadModel], batch_size: int
) -> None:
    store: ViewStore = new_view_store(tmp_path / "v.sqlite3", projection)
    store.generations.create(projection, 2)
    events = HISTORIES[projection.follows]()
    one_by_one, batched = Feeder(store, projection, 1), Feeder(store, projection, 2)

    for event in events:
        one_by_one([event])
    for start in range(0, len(events), batch_size):
        batched(events[start : start + batch_size])

    with store.engine.connect() as connection:
        first = checksums(projection, 1, connection)
        second = checksums(projection, 2, connection)
    assert first == second
    assert any(count for count, _ in first.values())


def test_two_generations_of_every_projection_coexist(settings: Settings) -> None:
    store = open_views(settings)
    try:
        for projection in READ_MODELS:
            store.generations.create(projection, 2)
            with store.engine.connect() as connection:
                assert checksums(projection, 2, connection)
    finally:
        store.engine.dispose()
