"""The Inventory service on its own: stock, reservations, registrations."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from uuid import uuid4

import pytest

from application.services import Inventory
from application.services.aggregate_views import StockView
from domain.errors import (
    InsufficientStockError,
    ProductAlreadyRegisteredError,
    ProductNotFoundError,
    ReservationNotFoundError,
    StockBelowReservedError,
)
from domain.inventory import InventoryItem
from domain.values import inventory_item_id
from tests.application.shop_testing import TEA, TEA_NAME, TEA_PRICE


@pytest.fixture
def tea(inventory: Inventory) -> str:
    """Given 20 units of tea on hand."""
    inventory.register_product(TEA, TEA_NAME, TEA_PRICE)
    inventory.receive_stock(TEA, 20)
    return TEA


def levels(inventory: Inventory, sku: str) -> tuple[int, int, int]:
    stock = inventory.get_stock(sku)
    return stock.on_hand, stock.reserved, stock.available


def stored_event_types(inventory: Inventory, sku: str) -> list[str]:
    return [type(e).__qualname__ for e in inventory.events.get(inventory_item_id(sku))]


def test_register_product_stores_one_registration_under_the_skus_id(
    inventory: Inventory,
) -> None:
    inventory.register_product(TEA, TEA_NAME, "6.2")

    assert inventory.get_stock(TEA) == StockView(
        sku=TEA,
        name=TEA_NAME,
        price=Decimal("6.20"),
        on_hand=0,
        reserved=0,
        available=0,
        version=1,
    )
    assert stored_event_types(inventory, TEA) == ["InventoryItem.Registered"]


def test_registering_a_sku_twice_is_refused_and_writes_nothing(
    inventory: Inventory,
) -> None:
    inventory.register_product(TEA, TEA_NAME, TEA_PRICE)
    head = inventory.log_head()

    with pytest.raises(ProductAlreadyRegisteredError) as refused:
        inventory.register_product(TEA, "Another name", "1.00")

    assert refused.value.sku == TEA
    assert inventory.log_head() == head
    assert inventory.get_stock(TEA).name == TEA_NAME


def test_reserve_holds_units_for_an_order(inventory: Inventory, tea: str) -> None:
    order_id = uuid4()

    inventory.reserve(tea, order_id, 5)

    assert levels(inventory, tea) == (20, 5, 15)
    item: InventoryItem = inventory.repository.get(inventory_item_id(tea))
    assert dict(item.reservations) == {order_id: 5}


def test_reserving_twice_for_the_same_order_changes_nothing(
    inventory: Inventory, tea: str
) -> None:
    order_id = uuid4()
    inventory.reserve(tea, order_id, 5)
    head = inventory.log_head()

    inventory.reserve(tea, order_id, 5)
    inventory.reserve(tea, order_id, 7)

    assert inventory.log_head() == head
    assert levels(inventory, tea) == (20, 5, 15)


def test_reservations_for_different_orders_add_up(
    inventory: Inventory, tea: str
) -> None:
    inventory.reserve(tea, uuid4(), 5)
    inventory.reserve(tea, uuid4(), 15)

    assert levels(inventory, tea) == (20, 20, 0)


def test_reserving_more_than_is_available_is_refused_and_writes_nothing(
    inventory: Inventory, tea: str
) -> None:
    inventory.reserve(tea, uuid4(), 15)
    head = inventory.log_head()

    with pytest.raises(InsufficientStockError) as refused:
        inventory.reserve(tea, uuid4(), 6)

    assert (refused.value.sku, refused.value.requested) == (tea, 6)
    assert refused.value.available == 5
    assert inventory.log_head() == head
    assert levels(inventory, tea) == (20, 15, 5)


def test_release_gives_the_units_back(inventory: Inventory, tea: str) -> None:
    order_id = uuid4()
    inventory.reserve(tea, order_id, 5)

    inventory.release(tea, order_id)

    assert levels(inventory, tea) == (20, 0, 20)


def test_commit_takes_the_units_off_the_shelf(inventory: Inventory, tea: str) -> None:
    order_id = uuid4()
    inventory.reserve(tea, order_id, 5)

    inventory.commit(tea, order_id)

    assert levels(inventory, tea) == (15, 0, 15)
    assert stored_event_types(inventory, tea)[-2:] == [
        "InventoryItem.StockReserved",
        "InventoryItem.ReservationCommitted",
    ]


@pytest.mark.parametrize("command", ["release", "commit"])
def test_release_or_commit_without_a_reservation_is_refused(
    inventory: Inventory, tea: str, command: str
) -> None:
    order_id = uuid4()
    inventory.reserve(tea, order_id, 5)
    inventory.release(tea, order_id)
    head = inventory.log_head()

    with pytest.raises(ReservationNotFoundError) as refused:
        getattr(inventory, command)(tea, order_id)

    assert (refused.value.sku, refused.value.order_id) == (tea, order_id)
    assert inventory.log_head() == head


def test_adjust_down_to_the_reserved_units_is_allowed(
    inventory: Inventory, tea: str
) -> None:
    inventory.reserve(tea, uuid4(), 8)

    inventory.adjust_stock(tea, 8, "count")

    assert levels(inventory, tea) == (8, 8, 0)


def test_adjust_below_the_reserved_units_is_refused_and_writes_nothing(
    inventory: Inventory, tea: str
) -> None:
    inventory.reserve(tea, uuid4(), 8)
    head = inventory.log_head()

    with pytest.raises(StockBelowReservedError) as refused:
        inventory.adjust_stock(tea, 7, "count")

    assert (refused.value.sku, refused.value.counted) == (tea, 7)
    assert refused.value.reserved == 8
    assert inventory.log_head() == head
    assert levels(inventory, tea) == (20, 8, 12)


@pytest.mark.parametrize(
    "command",
    ["receive", "adjust", "reserve", "release", "commit", "get"],
)
def test_commands_on_an_unregistered_sku_raise_product_not_found(
    inventory: Inventory, command: str
) -> None:
    calls: dict[str, Callable[[], object]] = {
        "receive": lambda: inventory.receive_stock("NOPE-1", 1),
        "adjust": lambda: inventory.adjust_stock("NOPE-1", 1, "count"),
        "reserve": lambda: inventory.reserve("NOPE-1", uuid4(), 1),
        "release": lambda: inventory.release("NOPE-1", uuid4()),
        "commit": lambda: inventory.commit("NOPE-1", uuid4()),
        "get": lambda: inventory.get_stock("NOPE-1"),
    }

    with pytest.raises(ProductNotFoundError) as refused:
        calls[command]()

    assert refused.value.sku == "NOPE-1"
    assert inventory.log_head() == 0
