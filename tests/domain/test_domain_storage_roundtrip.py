"""Every event and snapshot survives a JSON transcoder like the application's.

The application registers UUID, Decimal and datetime transcodings plus one for
``Line``; ``domain_testing.json_mapper`` does the same (with a ``Line``
transcoding of the tests' own), so these tests fail if a domain event or an
aggregate's state holds something that would not round-trip.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate

from domain import Cart, CartStatus, InventoryItem, Line, Order, OrderStatus
from tests.domain.domain_testing import json_mapper, replay, stored_and_loaded

ORDER_A = UUID("00000000-0000-4000-8000-00000000000a")
ORDER_B = UUID("00000000-0000-4000-8000-00000000000b")


def a_checked_out_cart() -> Cart:
    cart = Cart.open("customer-1")
    cart.add_item("APPLE", 2, Decimal("1.50"))
    cart.add_item("PEAR", 1, Decimal("0.80"))
    cart.change_quantity("PEAR", 3)
    cart.add_item("PLUM", 1, Decimal("0.30"))
    cart.remove_item("PLUM")
    cart.check_out()
    return cart


def an_open_cart() -> Cart:
    cart = Cart.open("customer-1")
    cart.add_item("APPLE", 2, Decimal("1.50"))
    return cart


def an_abandoned_cart() -> Cart:
    cart = an_open_cart()
    cart.abandon()
    return cart


def a_paid_then_cancelled_order() -> Order:
    cart = a_checked_out_cart()
    order = Order.place(cart.id, cart.customer_id, cart.lines, cart.total)
    order.confirm()
    order.pay()
    order.cancel("changed mind")
    return order


def a_rejected_order() -> Order:
    cart = a_checked_out_cart()
    order = Order.place(cart.id, cart.customer_id, cart.lines, cart.total)
    order.reject(["PEAR"], "out of stock")
    return order


def a_shipped_order() -> Order:
    cart = a_checked_out_cart()
    order = Order.place(cart.id, cart.customer_id, cart.lines, cart.total)
    order.confirm()
    order.pay()
    order.ship()
    return order


def a_busy_item() -> InventoryItem:
    item = InventoryItem.register("APPLE", "Apple", Decimal("0.50"))
    item.receive(20)
    item.reserve(ORDER_A, 4)
    item.reserve(ORDER_B, 6)
    item.adjust(18, "stock count")
    item.commit(ORDER_A)
    item.reserve(UUID(int=7), 2)
    item.release(UUID(int=7))
    return item


HISTORIES: list[Any] = [
    a_checked_out_cart,
    an_abandoned_cart,
    a_paid_then_cancelled_order,
    a_rejected_order,
    a_shipped_order,
    a_busy_item,
]


@pytest.mark.parametrize("make", HISTORIES)
def test_every_event_round_trips_and_replays_to_the_same_aggregate(make: Any) -> None:
    aggregate: Aggregate = make()
    history = list(aggregate.collect_events())
    mapper = json_mapper()

    loaded = [stored_and_loaded(past_event, mapper) for past_event in history]

    assert loaded == history
    assert replay(type(aggregate), loaded) == aggregate


@pytest.mark.parametrize("make", [*HISTORIES, an_open_cart])
def test_a_snapshot_round_trips_to_an_equal_aggregate(make: Any) -> None:
    aggregate: Aggregate = make()
    aggregate.collect_events()
    snapshot = type(aggregate).Snapshot.take(aggregate)

    restored = stored_and_loaded(snapshot, json_mapper()).mutate(None)

    assert type(restored) is type(aggregate)
    assert restored == aggregate


def test_an_inventory_item_snapshot_restores_a_working_item() -> None:
    item = a_busy_item()
    item.collect_events()
    snapshot = InventoryItem.Snapshot.take(item)

    restored = stored_and_loaded(snapshot, json_mapper()).mutate(None)

    assert isinstance(restored, InventoryItem)
    assert restored == item
    assert (restored.on_hand, restored.reserved, restored.available) == (14, 6, 8)
    assert restored.reservations == {ORDER_B: 6}
    restored.release(ORDER_B)
    assert restored.available == 14


def test_a_restored_cart_and_order_still_report_typed_statuses() -> None:
    cart = an_open_cart()
    order = a_rejected_order()
    mapper = json_mapper()

    restored_cart = stored_and_loaded(Cart.Snapshot.take(cart), mapper).mutate(None)
    restored_order = stored_and_loaded(Order.Snapshot.take(order), mapper).mutate(None)

    assert restored_cart.status is CartStatus.OPEN
    assert restored_order.status is OrderStatus.REJECTED
    assert restored_order.short_skus == ("PEAR",)
    restored_cart.add_item("APPLE", 1, Decimal("1.50"))
    assert restored_cart.lines == (Line("APPLE", 3, Decimal("1.50")),)
