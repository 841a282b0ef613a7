"""Every event records who, which user action and what caused it; the Shop takes
the actor and correlation id per call or for a block of calls."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from application import Shop
from application.services.audit_metadata import metadata_of
from domain.errors import InvalidIdError, InvalidTextError
from domain.values import inventory_item_id

TEA = "TEA-1"


def metadata_of_last_event(shop: Shop, sku: str) -> tuple[str, UUID]:
    last = list(shop.inventory.events.get(inventory_item_id(sku)))[-1]
    metadata = metadata_of(last)
    assert metadata is not None
    return metadata.actor, metadata.correlation_id


def test_each_call_is_its_own_action_by_system_unless_told(shop: Shop) -> None:
    shop.register_product(TEA, "Tea", "1.00")
    first = metadata_of_last_event(shop, TEA)
    shop.receive_stock(TEA, 1)
    second = metadata_of_last_event(shop, TEA)
    assert first[0] == second[0] == "system"
    assert first[1] != second[1]


def test_a_call_takes_its_actor_and_correlation_id(shop: Shop) -> None:
    shop.register_product(TEA, "Tea", "1.00", actor="clerk")
    assert metadata_of_last_event(shop, TEA)[0] == "clerk"
    action = uuid4()
    shop.receive_stock(TEA, 5, actor="warehouse", correlation_id=action)
    assert metadata_of_last_event(shop, TEA) == ("warehouse", action)


def test_a_block_of_calls_is_one_action(shop: Shop) -> None:
    shop.register_product(TEA, "Tea", "1.00")
    with shop.acting_as("auditor") as action:
        shop.receive_stock(TEA, 1)
        shop.adjust_stock(TEA, 3, "count")
        # a call inside the block may name another actor, but stays in the action
        shop.receive_stock(TEA, 1, actor="helper")
    events = list(shop.inventory.events.get(inventory_item_id(TEA)))[-3:]
    metadata = [metadata_of(event) for event in events]
    assert [m.actor for m in metadata if m] == ["auditor", "auditor", "helper"]
    assert {m.correlation_id for m in metadata if m} == {action.correlation_id}


@pytest.mark.parametrize(
    ("action", "error"),
    [
        ({"actor": ""}, InvalidTextError),
        ({"actor": "x" * 1_000_000}, InvalidTextError),
        ({"correlation_id": "not-a-uuid"}, InvalidIdError),
    ],
)
def test_a_bad_actor_or_correlation_id_is_refused_and_writes_nothing(
    shop: Shop, action: dict[str, object], error: type[Exception]
) -> None:
    shop.register_product(TEA, "Tea", "1.00")
    heads = shop.log_heads()
    with pytest.raises(error):
        shop.receive_stock(TEA, 1, **action)  # type: ignore[arg-type]
    assert shop.log_heads() == heads
