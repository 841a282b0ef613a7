"""The topology (``application.topology``) is the one declaration of who follows
whom: what it derives, what it refuses as it is declared, and that what the
shop shows and stores (names, order, grouping) is as before."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.domain import Aggregate
from sqlalchemy import Column, Integer, Table

from application.service_names import SERVICE_NAMES
from application.services import Carts, Inventory, Orders
from application.services.batch import Batch
from application.subscribers.hosting import declared_subscribers, worker_groups
from application.topology import (
    TOPOLOGY,
    ProcessManager,
    ReadModelOf,
    Service,
    Topology,
    TopologyError,
)
from domain.allocation import Allocation
from domain.cart import Cart
from domain.dead_letter import DeadLetter
from domain.inventory import InventoryItem
from domain.order import Order
from projections.batching.changes import Changes
from projections.read_model import ReadModel, handles, new_metadata
from projections.read_models.carts import CartSummaries
from projections.read_models.catalog import READ_MODELS
from projections.read_models.stock import StockLevels

# Stored data: tracking rows, locks and dead letters go by these names.
SUBSCRIBER_NAMES = [
    "checkout",
    "confirmation",
    "allocation",
    "carts",
    "orders",
    "customer_orders",
    "stock",
    "sales",
    "payment_deadlines",
    "audit_carts",
    "audit_orders",
    "audit_inventory",
]


def shop_topology(
    orders: type[Orders] = Orders,
    read_models: tuple[ReadModelOf, ...] = (),
    managers: tuple[tuple[str, type[Any], type[Any]], ...] | None = None,
) -> Topology:
    """The shop's services and process managers as ``TOPOLOGY`` declares them,
    with another Orders class if given."""
    return Topology(
        services=(
            Service(Carts, owns=(Cart,)),
            Service(orders, owns=(Order, DeadLetter)),
            Service(Inventory, owns=(InventoryItem, Allocation, DeadLetter)),
        ),
        process_managers=tuple(
            ProcessManager(name, service, follows=follows)
            for name, service, follows in managers
            or (
                ("checkout", orders, Carts),
                ("confirmation", orders, Inventory),
                ("allocation", Inventory, orders),
            )
        ),
        read_models=read_models,
    )


def test_the_subscribers_keep_their_names_order_and_grouping() -> None:
    assert [spec.name for spec in declared_subscribers()] == SUBSCRIBER_NAMES
    assert worker_groups() == [
        SUBSCRIBER_NAMES[:3],
        SUBSCRIBER_NAMES[3:9],
        SUBSCRIBER_NAMES[9:],
    ]
    assert [entry.read_model for entry in TOPOLOGY.read_models] == list(READ_MODELS)


def test_the_light_service_names_are_the_topologys() -> None:
    assert TOPOLOGY.service_names == SERVICE_NAMES
    assert tuple(service.name for service in (Carts, Orders, Inventory)) == (
        SERVICE_NAMES
    )


def test_process_managers_react_to_what_their_service_handles() -> None:
    reacts = {
        manager.name: (manager.follows.name, set(TOPOLOGY.event_types(manager)))
        for manager in TOPOLOGY.process_managers
    }
    assert reacts == {
        "checkout": ("Carts", {Cart.CheckedOut}),
        "confirmation": ("Inventory", {Allocation.Reserved, Allocation.Refused}),
        "allocation": ("Orders", {Order.Placed, Order.Cancelled, Order.Shipped}),
    }
    (checkout, *_) = TOPOLOGY.process_managers
    assert TOPOLOGY.subscription(checkout).topics == {"domain.cart:Cart.CheckedOut"}


def test_read_models_follow_the_service_the_topology_names() -> None:
    assert TOPOLOGY.follows(CartSummaries).application is Carts
    assert TOPOLOGY.follows(StockLevels).application is Inventory
    assert TOPOLOGY.read_model_named("stock").read_model is StockLevels
    with pytest.raises(LookupError, match="no projection named 'nope'"):
        TOPOLOGY.read_model_named("nope")


class OrdersThatAlsoSeeAbandonedCarts(Orders):
    @handles(Cart.Abandoned)
    def _note_abandoned_cart(self, event: Cart.Abandoned, batch: Batch) -> None:
        pass


def test_a_reaction_added_to_a_process_service_is_picked_up() -> None:
    topology = shop_topology(OrdersThatAlsoSeeAbandonedCarts)
    checkout, confirmation, _ = topology.process_managers
    assert set(topology.event_types(checkout)) == {Cart.CheckedOut, Cart.Abandoned}
    assert Cart.Abandoned not in topology.event_types(confirmation)
    assert "domain.cart:Cart.Abandoned" in topology.subscription(checkout).topics
    # The shop's own Orders does not have it.
    assert Cart.Abandoned not in TOPOLOGY.event_types(TOPOLOGY.process_managers[0])


class OrdersThatReactToTheirOwnPayments(Orders):
    @handles(Order.Paid)
    def _note_payment(self, event: Order.Paid, batch: Batch) -> None:
        pass


def test_a_reaction_to_a_service_no_process_manager_follows_is_refused() -> None:
    with pytest.raises(
        TopologyError,
        match=r"OrdersThatReactToTheirOwnPayments reacts to Order\.Paid, an event "
        r"of OrdersThatReactToTheirOwnPayments, but none of its process managers "
        r"follows that service",
    ):
        shop_topology(OrdersThatReactToTheirOwnPayments)


class Coupon(Aggregate):
    """An aggregate of no service's."""

    class Issued(Aggregate.Event):
        pass


class OrdersThatReactToCoupons(Orders):
    @handles(Coupon.Issued)
    def _note_coupon(self, event: Coupon.Issued, batch: Batch) -> None:
        pass


def test_a_reaction_to_an_event_of_no_service_is_refused() -> None:
    with pytest.raises(
        TopologyError,
        match=r"reacts to Coupon\.Issued, an event of no service in the topology",
    ):
        shop_topology(OrdersThatReactToCoupons)


def test_a_process_manager_that_would_react_to_nothing_is_refused() -> None:
    with pytest.raises(
        TopologyError,
        match="process manager idle follows Orders, but Orders reacts to none",
    ):
        shop_topology(
            managers=(
                ("checkout", Orders, Carts),
                ("confirmation", Orders, Inventory),
                ("allocation", Inventory, Orders),
                ("idle", Orders, Orders),
            )
        )


def test_a_process_manager_of_an_undeclared_service_is_refused() -> None:
    with pytest.raises(TopologyError, match="names Carts, which is not one of"):
        Topology(
            services=(Service(Orders, owns=(Order,)),),
            process_managers=(ProcessManager("checkout", Orders, follows=Carts),),
            read_models=(),
        )


class CartsSeenFromInventory(ReadModel):
    name = "carts_seen"
    follows = "Inventory"
    metadata = new_metadata()
    Table("carts_seen", metadata, Column("n", Integer, primary_key=True))

    @handles(Cart.Opened)
    def _opened(self, changes: Changes, event: Cart.Opened) -> None:
        pass


def test_a_read_model_of_another_services_events_is_refused() -> None:
    with pytest.raises(
        TopologyError,
        match="carts_seen follows Inventory, but handles events of another "
        r"service: Cart\.Opened",
    ):
        shop_topology(read_models=(ReadModelOf(CartsSeenFromInventory, Inventory),))


def test_a_read_model_whose_positions_name_another_log_is_refused() -> None:
    with pytest.raises(
        TopologyError, match="keys its positions by the log 'Carts', but the topology"
    ):
        shop_topology(read_models=(ReadModelOf(CartSummaries, follows=Orders),))


def test_a_subscriber_name_declared_twice_is_refused() -> None:
    with pytest.raises(TopologyError, match="declared twice: checkout"):
        shop_topology(
            managers=(
                ("checkout", Orders, Carts),
                ("checkout", Orders, Inventory),
                ("allocation", Inventory, Orders),
            )
        )
