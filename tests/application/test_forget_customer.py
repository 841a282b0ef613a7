"""Forgetting a customer by deleting their key (crypto-shredding): the events
stay and replay, the personal fields read as the marker everywhere, views
follow after a batch or a rebuild, the hash chains still verify, and the
customer's new commands are refused. On both engines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace as copy_of
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from application import Settings, Shop
from application.audit.chain_verification import verify_chains
from application.privacy.key_store import CustomerKeyStore
from application.privacy.shared_keys import open_key_store
from domain.customer import CustomerErasure
from domain.errors import (
    CustomerForgottenError,
    InvalidEmailError,
    InvalidInputError,
    InvalidTextError,
)
from domain.order import Order
from domain.values import FORGOTTEN, DeliveryDetails, Line
from tests.application.privacy_testing import details_for, event_table_bytes

TEA = "TEA-SENCHA"
CUSTOMER = "customer-7"
ADA = details_for(CUSTOMER)


@pytest.fixture
def live_shop(settings: Settings) -> Iterator[Shop]:
    """A shop that hosts its subscribers in threads, so views follow."""
    with Shop(settings=settings, subscribers="threads") as opened:
        opened.register_product(TEA, "Sencha green tea, 100 g", "6.20")
        opened.receive_stock(TEA, 50)
        yield opened


def place_order(shop: Shop, customer_id: str = CUSTOMER) -> UUID:
    cart_id = shop.open_cart(customer_id)
    shop.add_to_cart(cart_id, TEA, 2)
    return shop.checkout(cart_id, **details_for(customer_id))


def shipped_order(shop: Shop, customer_id: str = CUSTOMER) -> UUID:
    order_id = place_order(shop, customer_id)
    shop.wait_until_processed()
    shop.pay_order(order_id)
    shop.ship_order(order_id)
    shop.wait_until_processed()
    return order_id


def test_personal_data_is_not_in_the_stored_bytes_of_any_event_table(
    live_shop: Shop, settings: Settings
) -> None:
    # Given an order placed with delivery details, and the saga settled
    order_id = shipped_order(live_shop)
    # Then the order carries them
    assert live_shop.get_order(order_id).delivery == DeliveryDetails(CUSTOMER, **ADA)
    # And no event or snapshot table holds any of them, but the customer id
    stored = list(event_table_bytes(settings))
    tables = {table for table, _ in stored}
    assert tables, "no event table was read"
    for personal in (ADA["name"], ADA["email"], ADA["address"]):
        assert not [t for t, v in stored if personal.encode() in v], personal
    assert any(CUSTOMER.encode() in value for _, value in stored)


def test_a_forgotten_customer_reads_as_the_marker_everywhere(
    live_shop: Shop, settings: Settings
) -> None:
    # Given a shipped order of the customer, seen by the views
    order_id = shipped_order(live_shop)
    view = live_shop.queries.order(order_id)
    assert view is not None
    assert view.delivery == DeliveryDetails(CUSTOMER, **ADA)
    stored_before = sorted(event_table_bytes(settings))
    # When the customer is forgotten
    live_shop.forget_customer(CUSTOMER, actor="privacy-officer")
    # Then the order still loads, with the marker
    marker = DeliveryDetails.forgotten_for(CUSTOMER)
    assert live_shop.get_order(order_id).delivery == marker
    assert live_shop.get_order(order_id).status == "shipped"
    # And the views show it after the next batch
    live_shop.wait_until_processed()
    view = live_shop.queries.order(order_id)
    assert view is not None
    assert view.delivery == marker
    # And a rebuild of every read model agrees with them and gives it again
    reports = live_shop.rebuild("all")
    assert all(report.switched for report in reports)
    view = live_shop.queries.order(order_id)
    assert view is not None
    assert view.delivery == marker
    # And the forgotten customer's order still counts in product sales
    [sales] = live_shop.queries.product_sales()
    assert (sales.sku, sales.units_sold, sales.orders_shipped) == (TEA, 2, 1)
    # And the erasure is an event of its own, naming only the customer id,
    # with who did it
    page = live_shop.audit.events(event_types=["CustomerErasure.Forgotten"])
    [forgotten] = page.events
    assert forgotten.actor == "privacy-officer"
    assert forgotten.payload == {"customer_id": CUSTOMER}
    # And the stored events of before are byte for byte what they were
    stored_after = sorted(event_table_bytes(settings))
    assert all(item in stored_after for item in stored_before)
    # And the hash chain of every log still verifies
    verdicts = verify_chains(settings)
    assert {verdict.kind for verdict in verdicts.values()} == {"intact"}


def test_a_forgotten_customer_can_open_no_cart_and_check_out_nothing(
    shop: Shop,
) -> None:
    # Given a customer with an open, filled cart, who is then forgotten
    shop.register_product(TEA, "Sencha green tea, 100 g", "6.20")
    cart_id = shop.open_cart(CUSTOMER)
    shop.add_to_cart(cart_id, TEA, 1)
    shop.forget_customer(CUSTOMER)
    heads = shop.log_heads()
    # When they open a cart, or check the open one out, with or without details
    with pytest.raises(CustomerForgottenError) as refused:
        shop.open_cart(CUSTOMER)
    assert refused.value.customer_id == CUSTOMER
    with pytest.raises(CustomerForgottenError):
        shop.checkout(cart_id, **ADA)
    with pytest.raises(CustomerForgottenError):
        shop.checkout(cart_id)
    # Then nothing was written
    assert shop.log_heads() == heads
    assert shop.get_cart(cart_id).status == "open"


def test_forgetting_twice_is_harmless(shop: Shop) -> None:
    shop.forget_customer(CUSTOMER)
    heads = shop.log_heads()
    shop.forget_customer(CUSTOMER)
    assert shop.log_heads() == heads
    assert shop.orders.keys().is_forgotten(CUSTOMER)


def test_forgetting_again_completes_a_forget_that_stopped_halfway(
    shop: Shop,
) -> None:
    # Given a customer with a key, and their erasure recorded, but the key
    # not deleted (the process stopped in between)
    shop.carts.keys().ensure_key(CUSTOMER)
    shop.orders.save(CustomerErasure.forget(CUSTOMER))
    assert not shop.orders.keys().is_forgotten(CUSTOMER)
    # When the customer is forgotten again
    shop.forget_customer(CUSTOMER)
    # Then the key is gone
    assert shop.orders.keys().is_forgotten(CUSTOMER)


@pytest.mark.parametrize(
    ("details", "error"),
    [
        (
            {"name": "Ada", "email": "not-an-address", "address": "1 Row"},
            InvalidEmailError,
        ),
        (
            {"name": "", "email": "ada@example.org", "address": "1 Row"},
            InvalidTextError,
        ),
        (
            {"name": "Ada", "email": "ada@example.org", "address": "a\x00b"},
            InvalidTextError,
        ),
        ({"name": "Ada", "email": "ada@example.org"}, InvalidTextError),
    ],
)
def test_bad_details_are_refused_and_nothing_is_written(
    shop: Shop, details: dict[str, str], error: type[InvalidInputError]
) -> None:
    shop.register_product(TEA, "Sencha green tea, 100 g", "6.20")
    cart_id = shop.open_cart(CUSTOMER)
    shop.add_to_cart(cart_id, TEA, 1)
    heads = shop.log_heads()
    with pytest.raises(error):
        shop.checkout(cart_id, **details)  # type: ignore[arg-type]
    assert shop.log_heads() == heads
    assert shop.get_cart(cart_id).status == "open"


def test_a_malformed_customer_id_is_refused_before_anything_is_written(
    shop: Shop,
) -> None:
    heads = shop.log_heads()
    with pytest.raises(InvalidTextError):
        shop.forget_customer("bad\nid")
    assert shop.log_heads() == heads


def test_another_process_stops_decrypting_soon_after_a_forget(
    settings: Settings,
) -> None:
    # Given two key stores with caches of their own (two processes), both
    # holding the customer's key
    clock = [0.0]
    first = open_key_store(settings)
    second = CustomerKeyStore(first.engine, monotonic=lambda: clock[0])
    try:
        key = first.ensure_key(CUSTOMER)
        assert second.key_of(CUSTOMER) == key
        # When the first forgets the customer
        first.forget(CUSTOMER)
        assert first.key_of(CUSTOMER) is None
        # Then the second sees it once its recheck interval has passed
        clock[0] += 1.5
        assert second.key_of(CUSTOMER) is None
        with pytest.raises(CustomerForgottenError):
            second.ensure_key(CUSTOMER)
    finally:
        first.engine.dispose()


def test_no_key_shows_in_a_repr_or_an_error(settings: Settings) -> None:
    store = open_key_store(settings)
    try:
        key = store.ensure_key(CUSTOMER)
        store.forget(CUSTOMER)
        shown = [repr(store), str(CustomerForgottenError(CUSTOMER))]
        try:
            store.ensure_key(CUSTOMER)
        except CustomerForgottenError as error:
            shown.append(str(error))
        assert not [text for text in shown if key.hex() in text or repr(key) in text]
        assert FORGOTTEN not in repr(store)
    finally:
        store.engine.dispose()


def test_an_order_stored_before_delivery_details_decodes_without_them(
    shop: Shop,
) -> None:
    # Given an Order.Placed as stored before checkouts took details: no field
    order = Order.place(
        uuid4(), CUSTOMER, [Line(TEA, 1, Decimal("6.20"))], Decimal("6.20")
    )
    [placed] = order.collect_events()
    stored = shop.orders.mapper.to_stored_event(placed)
    state = json.loads(stored.state)
    del state["delivery"]
    old = copy_of(stored, state=json.dumps(state).encode())
    # When it is decoded
    decoded = shop.orders.mapper.to_domain_event(old)
    # Then it has no delivery details, and the order it makes neither
    assert isinstance(decoded, Order.Placed)
    assert decoded.delivery is None
    rebuilt: object = decoded.mutate(None)
    assert isinstance(rebuilt, Order)
    assert rebuilt.delivery is None
