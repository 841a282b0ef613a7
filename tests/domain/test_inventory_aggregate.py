"""InventoryItem: given past events, when one command, then new events or an error."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from domain import (
    InsufficientStockError,
    InvalidIdError,
    InvalidPriceError,
    InvalidQuantityError,
    InvalidSkuError,
    InvalidTextError,
    InventoryItem,
    ReservationNotFoundError,
    StockBelowReservedError,
    inventory_item_id,
)
from domain.values import MAX_QUANTITY
from tests.domain.domain_testing import replay, then_nothing, then_one

ORDER_A = UUID("00000000-0000-4000-8000-00000000000a")
ORDER_B = UUID("00000000-0000-4000-8000-00000000000b")
BAD_QUANTITIES: list[Any] = [0, -1, True, 1.0, 2.5, "3", None, MAX_QUANTITY + 1]
BAD_COUNTS: list[Any] = [-1, True, False, 1.0, "3", None, MAX_QUANTITY + 1]
BAD_PRICES: list[Any] = [
    Decimal("0"),
    Decimal("-0.01"),
    -1,
    1.5,
    float("nan"),
    Decimal("NaN"),
    Decimal("-Infinity"),
    Decimal("9.999"),
    "free",
    None,
]
BAD_TEXTS: list[Any] = ["", "   ", "\n\t", "x" * 1_000_000, None, 42]
BAD_SKUS: list[Any] = ["", "apple", "A B", "_A", "A" * 65, "É", None, 7]
BAD_IDS: list[Any] = ["not-a-uuid", "", None, 42, ORDER_A.int]


def given_item(on_hand: int = 0, **reservations: int) -> InventoryItem:
    """Given APPLE with this much received and these reservations (ORDER_A=...)."""
    item = InventoryItem.register("APPLE", "Apple", Decimal("0.50"))
    if on_hand:
        item.receive(on_hand)
    for name, quantity in reservations.items():
        item.reserve({"ORDER_A": ORDER_A, "ORDER_B": ORDER_B}[name], quantity)
    item.collect_events()
    return item


def assert_invariants(item: InventoryItem) -> None:
    assert item.on_hand >= 0
    assert 0 <= item.reserved <= item.on_hand
    assert item.available == item.on_hand - item.reserved
    assert item.reserved == sum(item.reservations.values())
    assert all(quantity > 0 for quantity in item.reservations.values())


# -- register ------------------------------------------------------------------


def test_register_records_registered_with_no_stock() -> None:
    item = InventoryItem.register("APPLE", " Apple ", "0.5")

    registered = then_one(item, InventoryItem.Registered)
    assert (registered.sku, registered.name, registered.price) == (
        "APPLE",
        "Apple",
        Decimal("0.50"),
    )
    assert (item.sku, item.name, item.price) == ("APPLE", "Apple", Decimal("0.50"))
    assert (item.on_hand, item.reserved, item.available) == (0, 0, 0)
    assert item.reservations == {}


def test_the_item_id_derives_from_the_sku() -> None:
    first = InventoryItem.register("APPLE", "Apple", Decimal("0.50"))
    again = InventoryItem.register("APPLE", "Green apple", Decimal("0.60"))
    other = InventoryItem.register("PEAR", "Pear", Decimal("0.50"))

    assert first.id == again.id == inventory_item_id("APPLE")
    assert other.id == inventory_item_id("PEAR") != first.id


@pytest.mark.parametrize("sku", BAD_SKUS)
def test_register_refuses_a_bad_sku(sku: Any) -> None:
    with pytest.raises(InvalidSkuError):
        InventoryItem.register(sku, "Apple", Decimal("0.50"))


@pytest.mark.parametrize("name", BAD_TEXTS)
def test_register_refuses_a_bad_name(name: Any) -> None:
    with pytest.raises(InvalidTextError) as caught:
        InventoryItem.register("APPLE", name, Decimal("0.50"))
    assert caught.value.field == "name"


@pytest.mark.parametrize("price", BAD_PRICES)
def test_register_refuses_a_bad_price(price: Any) -> None:
    with pytest.raises(InvalidPriceError):
        InventoryItem.register("APPLE", "Apple", price)


# -- receive -------------------------------------------------------------------


def test_receive_records_stock_received() -> None:
    item = given_item(on_hand=5, ORDER_A=2)

    item.receive(10)

    received = then_one(item, InventoryItem.StockReceived)
    assert received.quantity == 10
    assert (item.on_hand, item.reserved, item.available) == (15, 2, 13)


@pytest.mark.parametrize("quantity", BAD_QUANTITIES)
def test_receive_refuses_a_bad_quantity(quantity: Any) -> None:
    item = given_item(on_hand=5)

    with pytest.raises(InvalidQuantityError):
        item.receive(quantity)

    then_nothing(item)


def test_receive_refuses_to_put_more_than_the_maximum_on_hand() -> None:
    item = given_item(on_hand=MAX_QUANTITY)

    with pytest.raises(InvalidQuantityError):
        item.receive(1)

    then_nothing(item)
    assert item.on_hand == MAX_QUANTITY


# -- adjust --------------------------------------------------------------------


@pytest.mark.parametrize(("counted", "delta"), [(7, -3), (12, 2), (0, -10)])
def test_adjust_records_stock_adjusted_with_the_difference(
    counted: int, delta: int
) -> None:
    item = given_item(on_hand=10)

    item.adjust(counted, " stock count ")

    adjusted = then_one(item, InventoryItem.StockAdjusted)
    assert (adjusted.counted, adjusted.delta, adjusted.reason) == (
        counted,
        delta,
        "stock count",
    )
    assert item.on_hand == counted


def test_adjust_to_exactly_the_reserved_units_is_allowed() -> None:
    item = given_item(on_hand=10, ORDER_A=4)

    item.adjust(4, "stock count")

    then_one(item, InventoryItem.StockAdjusted)
    assert (item.on_hand, item.reserved, item.available) == (4, 4, 0)


def test_adjust_to_the_current_count_records_nothing() -> None:
    item = given_item(on_hand=10)

    item.adjust(10, "stock count")

    then_nothing(item)


def test_adjust_below_the_reserved_units_is_refused() -> None:
    item = given_item(on_hand=10, ORDER_A=4, ORDER_B=3)

    with pytest.raises(StockBelowReservedError) as caught:
        item.adjust(6, "stock count")

    assert (caught.value.sku, caught.value.counted, caught.value.reserved) == (
        "APPLE",
        6,
        7,
    )
    then_nothing(item)
    assert item.on_hand == 10


@pytest.mark.parametrize("counted", BAD_COUNTS)
def test_adjust_refuses_a_bad_count(counted: Any) -> None:
    item = given_item(on_hand=10)

    with pytest.raises(InvalidQuantityError):
        item.adjust(counted, "stock count")

    then_nothing(item)


@pytest.mark.parametrize("reason", BAD_TEXTS)
def test_adjust_refuses_a_bad_reason(reason: Any) -> None:
    item = given_item(on_hand=10)

    with pytest.raises(InvalidTextError):
        item.adjust(5, reason)

    then_nothing(item)


# -- reserve -------------------------------------------------------------------


def test_reserve_records_stock_reserved() -> None:
    item = given_item(on_hand=10)

    item.reserve(ORDER_A, 4)

    reserved = then_one(item, InventoryItem.StockReserved)
    assert (reserved.order_id, reserved.quantity) == (ORDER_A, 4)
    assert (item.on_hand, item.reserved, item.available) == (10, 4, 6)
    assert item.reservations == {ORDER_A: 4}
    assert item.reserved_for(ORDER_A) == 4


def test_reserve_may_take_every_available_unit() -> None:
    item = given_item(on_hand=10, ORDER_A=4)

    item.reserve(ORDER_B, 6)

    then_one(item, InventoryItem.StockReserved)
    assert item.available == 0
    assert item.reservations == {ORDER_A: 4, ORDER_B: 6}


def test_reserve_more_than_available_is_refused() -> None:
    item = given_item(on_hand=10, ORDER_A=4)

    with pytest.raises(InsufficientStockError) as caught:
        item.reserve(ORDER_B, 7)

    assert (caught.value.sku, caught.value.requested, caught.value.available) == (
        "APPLE",
        7,
        6,
    )
    then_nothing(item)


@pytest.mark.parametrize("quantity", [4, 1, 10])
def test_reserve_again_for_the_same_order_records_nothing(quantity: int) -> None:
    item = given_item(on_hand=10, ORDER_A=4)

    item.reserve(ORDER_A, quantity)

    then_nothing(item)
    assert item.reservations == {ORDER_A: 4}


def test_reserve_again_for_the_same_order_is_a_no_op_even_when_short() -> None:
    item = given_item(on_hand=4, ORDER_A=4)

    item.reserve(ORDER_A, 4)

    then_nothing(item)


def test_reserve_accepts_the_order_id_as_text() -> None:
    item = given_item(on_hand=10)

    item.reserve(str(ORDER_A), 1)  # type: ignore[arg-type]

    assert then_one(item, InventoryItem.StockReserved).order_id == ORDER_A


@pytest.mark.parametrize("quantity", BAD_QUANTITIES)
def test_reserve_refuses_a_bad_quantity(quantity: Any) -> None:
    item = given_item(on_hand=10)

    with pytest.raises(InvalidQuantityError):
        item.reserve(ORDER_A, quantity)

    then_nothing(item)


@pytest.mark.parametrize("order_id", BAD_IDS)
def test_reserve_refuses_a_bad_order_id(order_id: Any) -> None:
    item = given_item(on_hand=10)

    with pytest.raises(InvalidIdError):
        item.reserve(order_id, 1)

    then_nothing(item)


# -- release -------------------------------------------------------------------


def test_release_records_reservation_released_and_frees_the_units() -> None:
    item = given_item(on_hand=10, ORDER_A=4, ORDER_B=3)

    item.release(ORDER_A)

    released = then_one(item, InventoryItem.ReservationReleased)
    assert (released.order_id, released.quantity) == (ORDER_A, 4)
    assert (item.on_hand, item.reserved, item.available) == (10, 3, 7)
    assert item.reservations == {ORDER_B: 3}


def test_release_without_a_reservation_is_refused() -> None:
    item = given_item(on_hand=10, ORDER_B=3)

    with pytest.raises(ReservationNotFoundError) as caught:
        item.release(ORDER_A)

    assert (caught.value.sku, caught.value.order_id) == ("APPLE", ORDER_A)
    then_nothing(item)


def test_release_twice_is_refused() -> None:
    item = given_item(on_hand=10, ORDER_A=4)
    item.release(ORDER_A)
    item.collect_events()

    with pytest.raises(ReservationNotFoundError):
        item.release(ORDER_A)

    then_nothing(item)


@pytest.mark.parametrize("order_id", BAD_IDS)
def test_release_refuses_a_bad_order_id(order_id: Any) -> None:
    item = given_item(on_hand=10, ORDER_A=4)

    with pytest.raises(InvalidIdError):
        item.release(order_id)

    then_nothing(item)


# -- commit --------------------------------------------------------------------


def test_commit_records_reservation_committed_and_takes_the_units_away() -> None:
    item = given_item(on_hand=10, ORDER_A=4, ORDER_B=3)

    item.commit(ORDER_A)

    committed = then_one(item, InventoryItem.ReservationCommitted)
    assert (committed.order_id, committed.quantity) == (ORDER_A, 4)
    assert (item.on_hand, item.reserved, item.available) == (6, 3, 3)
    assert item.reservations == {ORDER_B: 3}


def test_commit_without_a_reservation_is_refused() -> None:
    item = given_item(on_hand=10)

    with pytest.raises(ReservationNotFoundError):
        item.commit(ORDER_A)

    then_nothing(item)


def test_commit_after_release_is_refused() -> None:
    item = given_item(on_hand=10, ORDER_A=4)
    item.release(ORDER_A)
    item.collect_events()

    with pytest.raises(ReservationNotFoundError):
        item.commit(ORDER_A)

    then_nothing(item)
    assert item.on_hand == 10


@pytest.mark.parametrize("order_id", BAD_IDS)
def test_commit_refuses_a_bad_order_id(order_id: Any) -> None:
    item = given_item(on_hand=10, ORDER_A=4)

    with pytest.raises(InvalidIdError):
        item.commit(order_id)

    then_nothing(item)


# -- invariants, replay, read-only state ---------------------------------------


def test_a_full_life_keeps_the_invariants_and_replays_to_the_same_item() -> None:
    item = InventoryItem.register("APPLE", "Apple", Decimal("0.50"))
    history = list(item.collect_events())
    steps: list[Callable[[], None]] = [
        lambda: item.receive(10),
        lambda: item.reserve(ORDER_A, 4),
        lambda: item.reserve(ORDER_B, 6),
        lambda: item.adjust(12, "found two"),
        lambda: item.commit(ORDER_A),
        lambda: item.release(ORDER_B),
        lambda: item.adjust(0, "write-off"),
    ]
    for step in steps:
        step()
        assert_invariants(item)
        history += item.collect_events()

    rebuilt = replay(InventoryItem, history)

    assert rebuilt == item
    assert rebuilt.version == len(history) == 8
    assert (rebuilt.on_hand, rebuilt.reserved, rebuilt.reservations) == (0, 0, {})


def test_replay_does_not_rerun_business_rules() -> None:
    # A count recorded under an older rule must still apply, even below reserved.
    item = InventoryItem.register("APPLE", "Apple", Decimal("0.50"))
    item.receive(10)
    item.reserve(ORDER_A, 4)
    history = list(item.collect_events())
    stale_count = InventoryItem.StockAdjusted(  # type: ignore[call-arg]
        originator_id=item.id,
        originator_version=item.version + 1,
        timestamp=item.modified_on,
        counted=2,
        delta=-8,
        reason="recorded under an older rule",
    )

    rebuilt = replay(InventoryItem, [*history, stale_count])

    assert (rebuilt.on_hand, rebuilt.reserved) == (2, 4)


def test_reservations_cannot_be_changed_by_callers() -> None:
    item = given_item(on_hand=10, ORDER_A=4)

    with pytest.raises(TypeError):
        item.reservations[ORDER_B] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        item.on_hand = 99  # type: ignore[misc]
    assert item.reservations == {ORDER_A: 4}
