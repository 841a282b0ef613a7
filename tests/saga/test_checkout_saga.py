"""The checkout saga end to end, on SQLite and PostgreSQL: Cart.CheckedOut places
an order, Inventory reserves all lines or none, Orders confirms or rejects, and
cancellation and shipment release or commit the stock.

Every test runs with the shop in one database, and with each service (and the
views) in a database of its own: separate SQLite folders, three PostgreSQL
databases, and a mix (Carts on SQLite, Orders and Inventory on PostgreSQL);
the last two also with every subscriber fed by the broker (each service's
relay publishing to a NATS server of the test's own), so that no subscriber
reads another service's database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from psycopg import sql

from application import Settings, Shop
from application.config import ALL_SUBSCRIBERS, STORAGE_PARTS
from application.databases import Storage
from application.demo.invariants import check_invariants
from application.service_names import SERVICE_NAMES
from application.services.audit_metadata import acting_as, event_id, metadata_of
from domain.allocation import Allocation, allocation_id
from domain.inventory import InventoryItem
from domain.order import Order
from domain.values import inventory_item_id
from tests.conftest import postgres_url, temporary_postgres_databases
from tests.support.private_nats import private_nats

TEA, MUG = "TEA-SENCHA", "MUG-STONE"

LAYOUTS = [
    pytest.param(("sqlite", "one"), id="sqlite"),
    pytest.param(("sqlite", "apart"), id="sqlite-a-folder-per-part"),
    pytest.param(("postgres", "one"), id="postgres", marks=pytest.mark.postgres),
    pytest.param(
        ("postgres", "apart"), id="postgres-three-databases", marks=pytest.mark.postgres
    ),
    pytest.param(
        ("postgres", "mixed"),
        id="carts-on-sqlite-the-rest-on-postgres",
        marks=pytest.mark.postgres,
    ),
    pytest.param(
        ("postgres", "apart", "broker"),
        id="postgres-three-databases-through-the-broker",
        marks=pytest.mark.postgres,
    ),
    pytest.param(
        ("postgres", "mixed", "broker"),
        id="carts-on-sqlite-the-rest-on-postgres-through-the-broker",
        marks=pytest.mark.postgres,
    ),
]


@pytest.fixture(params=LAYOUTS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """The shop's storage (and feeds) as the layout says (this module's own
    ``settings``)."""
    with _storage(request, tmp_path) as storage:
        if len(request.param) < 3:
            yield storage
            return
        with private_nats() as server:
            yield replace(
                storage, nats_url=server.url, broker_fed=frozenset({ALL_SUBSCRIBERS})
            )


@contextmanager
def _storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    engine, layout = request.param[:2]
    if engine == "sqlite":
        shop_settings = Settings.from_url(data_dir=tmp_path / "shop")
        if layout == "apart":
            shop_settings = replace(
                shop_settings,
                own_storage={
                    part: Storage("sqlite", tmp_path / part.lower())
                    for part in STORAGE_PARTS
                },
            )
        yield shop_settings
        return
    schema: str = request.getfixturevalue("postgres_schema")
    shop_settings = Settings.from_url(postgres_url(schema))
    if layout == "one":
        yield shop_settings
    elif layout == "mixed":
        yield replace(
            shop_settings,
            own_storage={"Carts": Storage("sqlite", tmp_path / "carts")},
        )
    else:
        with temporary_postgres_databases(len(SERVICE_NAMES)) as urls:
            yield replace(
                shop_settings,
                own_storage={
                    name: Storage.from_url(url)
                    for name, url in zip(SERVICE_NAMES, urls, strict=True)
                },
            )


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


def test_each_service_keeps_its_log_in_its_own_database_only(
    shop: Shop, settings: Settings
) -> None:
    # given a settled checkout, so that every service has written
    checked_out(shop, "fay", {TEA: 1})
    shop.wait_until_processed()

    # then each service's events are in the database its settings name, and
    # in no other database of the shop
    databases = {settings.storage_of(part) for part in STORAGE_PARTS}
    for name, service in shop.services.items():
        own = settings.storage_of(name)
        for storage in databases:
            assert holds_log_of(storage, service.name, service.recorder) == (
                storage == own
            ), f"{name}'s log in {storage.describe()}"


def holds_log_of(storage: Storage, service: str, recorder: object) -> bool:
    if storage.engine == "sqlite":
        return (storage.data_dir / f"{service.lower()}.sqlite3").exists()
    pg = storage.postgres
    assert pg is not None
    table = getattr(recorder, "events_table_name")  # noqa: B009 (any recorder)
    assert isinstance(table, str)
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT to_regclass(%s)",
            (sql.Identifier(pg.schema, table).as_string(conn),),
        ).fetchone()
    return row is not None and row[0] is not None
