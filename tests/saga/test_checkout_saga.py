"""The checkout saga end to end, on SQLite and PostgreSQL: Cart.CheckedOut places
an order, Inventory reserves all lines or none, Orders confirms or rejects, and
cancellation and shipment release or commit the stock."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest

from application import Settings, Shop
from application.demo.invariants import check_invariants
from application.services.audit_metadata import acting_as, event_id, metadata_of
from domain.allocation import Allocation, allocation_id
from domain.inventory import InventoryItem
from domain.order import Order
from domain.values import inventory_item_id

TEA, MUG = "TEA-SENCHA", "MUG-STONE"


@pytest.fixture
def shop(settings: Settings) -> Iterator[Shop]:
    with Shop(settings=settings) as shop:
        shop.register_product(TEA, "Sencha", "6.20")
        shop.register_product(MUG, "Mug", "12.00")
        shop.receive_stock(TEA, 5)
        shop.receive_stock(MUG, 1)
        yield shop


def checked_out(shop: Shop, customer: str, quantities: dict[str, int]) -> UUID:
    cart_id = shop.open_cart(customer)
    for sku, quantity in quantities.items():
        shop.add_to_cart(cart_id, sku, quantity)
    shop.checkout(cart_id)
    return cart_id


def test_a_checkout_with_enough_stock_ends_confirmed_with_every_line_reserved(
    shop: Shop,
) -> None:
    # when a cart is checked out and the saga settles
    cart_id = checked_out(shop, "ann", {TEA: 2, MUG: 1})
    shop.wait_until_processed()

    # then its order is confirmed, with a payment deadline, and the stock is held
    order = shop.get_order(shop.get_cart(cart_id).order_id or UUID(int=0))
    assert order.status == "confirmed"
    assert (shop.get_stock(TEA).reserved, shop.get_stock(MUG).reserved) == (2, 1)
    aggregate: object = shop.orders.repository.get(order.order_id)
    assert isinstance(aggregate, Order)
    assert aggregate.payment_due_at is not None
    assert aggregate.payment_due_at > aggregate.created_on


def test_a_short_line_rejects_the_order_and_reserves_nothing_at_all(
    shop: Shop,
) -> None:
    # when a cart wants more mugs than there are, and some tea
    cart_id = checked_out(shop, "bob", {TEA: 1, MUG: 2})
    shop.wait_until_processed()

    # then the order is rejected naming the short SKU, and no tea is held either
    order = shop.get_order(shop.get_cart(cart_id).order_id or UUID(int=0))
    assert order.status == "rejected"
    assert order.short_skus == (MUG,)
    assert order.rejection_reason is not None
    assert (shop.get_stock(TEA).reserved, shop.get_stock(MUG).reserved) == (0, 0)
    tea_history = list(shop.inventory.events.get(inventory_item_id(TEA)))
    assert not any(isinstance(e, InventoryItem.StockReserved) for e in tea_history)


def test_cancelling_releases_and_shipping_commits_the_stock(shop: Shop) -> None:
    # given two confirmed orders
    cancelled = checked_out(shop, "cat", {TEA: 2})
    shipped = checked_out(shop, "dan", {TEA: 3})
    shop.wait_until_processed()
    cancelled_order = shop.get_cart(cancelled).order_id
    shipped_order = shop.get_cart(shipped).order_id
    assert cancelled_order is not None
    assert shipped_order is not None

    # when one is cancelled and the other paid and shipped
    shop.cancel_order(cancelled_order, "changed my mind")
    shop.pay_order(shipped_order)
    shop.ship_order(shipped_order)
    shop.wait_until_processed()

    # then the first's stock is back and the second's has left the shelf
    tea = shop.get_stock(TEA)
    assert (tea.on_hand, tea.reserved, tea.available) == (2, 0, 2)
    assert [check.ok for check in check_invariants(shop)] == [True, True, True]


def test_every_reaction_carries_the_checkout_correlation_id_and_its_cause(
    shop: Shop,
) -> None:
    # when a customer checks out as one user action
    with acting_as("ann") as action:
        cart_id = checked_out(shop, "ann", {TEA: 1})
    shop.wait_until_processed()
    order_id = shop.get_cart(cart_id).order_id
    assert order_id is not None

    # then each step of the saga is in that action and names what caused it
    checkout_event = list(shop.carts.events.get(cart_id))[-1]
    [placed, confirmed] = list(shop.orders.events.get(order_id))
    allocation_events = list(shop.inventory.events.get(allocation_id(order_id)))
    reserved = allocation_events[-1]
    assert isinstance(reserved, Allocation.Reserved)
    chain = [
        (checkout_event, None, "ann"),
        (placed, checkout_event, "process:checkout"),
        (reserved, placed, "process:allocation"),
        (confirmed, reserved, "process:confirmation"),
    ]
    for event, cause, actor in chain:
        metadata = metadata_of(event)
        assert metadata is not None
        assert metadata.correlation_id == action.correlation_id
        assert metadata.actor == actor
        assert metadata.causation_id == (event_id(cause) if cause else None)


def test_redelivering_a_batch_changes_nothing(shop: Shop) -> None:
    # given a settled checkout
    cart_id = checked_out(shop, "eve", {TEA: 2})
    shop.wait_until_processed()
    heads = shop.log_heads()
    allocation = next(s for s in shop.subscribers.subscribers if s.name == "allocation")
    position = allocation.position()
    assert position is not None
    placed = [
        notification
        for notification in shop.orders.recorder.select_notifications(
            start=None, limit=100
        )
    ]
    events = [shop.orders.mapper.to_domain_event(n) for n in placed]

    # when the same events are delivered again from an old position
    applied = allocation.process(
        events, expected_position=0, new_position=placed[-1].id
    )

    # then the batch is refused as already handled, and nothing was written
    assert applied is False
    assert shop.log_heads() == heads
    assert shop.get_stock(TEA).reserved == 2
    order_id = shop.get_cart(cart_id).order_id
    assert order_id is not None
    assert shop.get_order(order_id).status == "confirmed"
