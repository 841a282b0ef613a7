"""The ``Shop`` facade's happy paths, on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from application import Settings, Shop, StockView
from application.config import DATABASE_URL_VARIABLE
from application.databases import DATA_DIR_VARIABLE
from domain.errors import CartClosedError
from domain.values import Line, order_id_for_cart
from tests.application.shop_testing import (
    MUG,
    MUG_PRICE,
    TEA,
    TEA_NAME,
    TEA_PRICE,
    place_order_of,
)
from tests.conftest import postgres_url

IdForm = Callable[[UUID], UUID | str]
ID_FORMS = [
    pytest.param(lambda id_: id_, id="uuid"),
    pytest.param(lambda id_: str(id_).upper(), id="str"),
]


@pytest.fixture
def stocked(shop: Shop) -> Shop:
    shop.register_product(TEA, TEA_NAME, "6.20")
    shop.register_product(MUG, "Stoneware mug", MUG_PRICE)
    shop.receive_stock(TEA, 40)
    shop.receive_stock(MUG, 5)
    return shop


# -- products and stock --------------------------------------------------------


def test_register_product_shows_it_with_no_stock(shop: Shop) -> None:
    returned = shop.register_product(TEA, TEA_NAME, "6.20")

    assert returned == TEA
    assert shop.get_stock(TEA) == StockView(
        sku=TEA,
        name=TEA_NAME,
        price=TEA_PRICE,
        on_hand=0,
        reserved=0,
        available=0,
        version=1,
    )


def test_register_product_takes_the_price_as_decimal_int_or_text(shop: Shop) -> None:
    shop.register_product("A-1", "Priced as Decimal", Decimal("6.2"))
    shop.register_product("A-2", "Priced as int", 7)
    shop.register_product("A-3", "Priced as text", " 1234.50 ")

    prices = [shop.get_stock(sku).price for sku in ("A-1", "A-2", "A-3")]
    assert prices == [Decimal("6.20"), Decimal("7.00"), Decimal("1234.50")]
    assert all(price.as_tuple().exponent == -2 for price in prices)


def test_receive_stock_adds_to_what_is_on_hand(shop: Shop) -> None:
    shop.register_product(TEA, TEA_NAME, TEA_PRICE)

    shop.receive_stock(TEA, 30)
    shop.receive_stock(TEA, 12)

    stock = shop.get_stock(TEA)
    assert (stock.on_hand, stock.reserved, stock.available) == (42, 0, 42)
    assert stock.version == 3


def test_adjust_stock_sets_the_counted_units(stocked: Shop) -> None:
    stocked.adjust_stock(TEA, 37, "stock count: 3 broken")
    stocked.adjust_stock(MUG, 0, "all sold at the fair")

    tea, mug = stocked.get_stock(TEA), stocked.get_stock(MUG)
    assert (tea.on_hand, tea.available) == (37, 37)
    assert (mug.on_hand, mug.available) == (0, 0)


def test_adjust_stock_to_the_same_count_writes_nothing(stocked: Shop) -> None:
    before = stocked.log_heads()

    stocked.adjust_stock(TEA, 40, "count agrees")

    assert stocked.log_heads() == before
    assert stocked.get_stock(TEA).on_hand == 40


# -- carts ---------------------------------------------------------------------


def test_open_cart_gives_an_empty_open_cart(shop: Shop) -> None:
    cart_id = shop.open_cart("  customer-42 ")

    cart = shop.get_cart(cart_id)
    assert isinstance(cart_id, UUID)
    assert cart.cart_id == cart_id
    assert cart.customer_id == "customer-42"
    assert cart.status == "open"
    assert cart.lines == ()
    assert cart.total == Decimal("0.00")
    assert cart.order_id is None
    assert cart.version == 1
    assert shop.open_cart("customer-42") != cart_id


def test_add_to_cart_takes_the_price_from_the_product(stocked: Shop) -> None:
    cart_id = stocked.open_cart("customer-42")

    stocked.add_to_cart(cart_id, TEA, 2)
    stocked.add_to_cart(cart_id, MUG, 1)
    stocked.add_to_cart(cart_id, TEA, 1)

    cart = stocked.get_cart(cart_id)
    assert cart.lines == (Line(TEA, 3, TEA_PRICE), Line(MUG, 1, MUG_PRICE))
    assert cart.total == Decimal("31.10")
    assert cart.version == 4


def test_adding_to_a_cart_reserves_no_stock(stocked: Shop) -> None:
    cart_id = stocked.open_cart("customer-42")

    stocked.add_to_cart(cart_id, TEA, 2)

    assert stocked.get_stock(TEA).reserved == 0


def test_change_quantity_sets_the_line_quantity(stocked: Shop) -> None:
    cart_id = stocked.open_cart("customer-42")
    stocked.add_to_cart(cart_id, TEA, 2)

    stocked.change_quantity(cart_id, TEA, 5)

    cart = stocked.get_cart(cart_id)
    assert cart.lines == (Line(TEA, 5, TEA_PRICE),)
    assert cart.total == Decimal("31.00")


def test_change_quantity_to_the_same_quantity_writes_nothing(stocked: Shop) -> None:
    cart_id = stocked.open_cart("customer-42")
    stocked.add_to_cart(cart_id, TEA, 2)
    before = stocked.log_heads()

    stocked.change_quantity(cart_id, TEA, 2)

    assert stocked.log_heads() == before


def test_remove_from_cart_drops_the_line(stocked: Shop) -> None:
    cart_id = stocked.open_cart("customer-42")
    stocked.add_to_cart(cart_id, TEA, 2)
    stocked.add_to_cart(cart_id, MUG, 1)

    stocked.remove_from_cart(cart_id, TEA)

    cart = stocked.get_cart(cart_id)
    assert cart.lines == (Line(MUG, 1, MUG_PRICE),)
    assert cart.total == MUG_PRICE


def test_abandon_cart_closes_it(stocked: Shop) -> None:
    cart_id = stocked.open_cart("customer-42")
    stocked.add_to_cart(cart_id, TEA, 2)

    stocked.abandon_cart(cart_id)

    assert stocked.get_cart(cart_id).status == "abandoned"
    with pytest.raises(CartClosedError) as refused:
        stocked.add_to_cart(cart_id, TEA, 1)
    assert (refused.value.cart_id, refused.value.status) == (cart_id, "abandoned")


def test_checkout_returns_the_order_id_derived_from_the_cart(stocked: Shop) -> None:
    cart_id = stocked.open_cart("customer-42")
    stocked.add_to_cart(cart_id, TEA, 2)

    order_id = stocked.checkout(cart_id)

    assert order_id == order_id_for_cart(cart_id)
    cart = stocked.get_cart(cart_id)
    assert cart.status == "checked_out"
    assert cart.order_id == order_id
    assert cart.lines == (Line(TEA, 2, TEA_PRICE),)
    assert cart.total == Decimal("12.40")


def test_placed_order_is_seen_through_the_shop(stocked: Shop) -> None:
    cart_id = stocked.open_cart("customer-42")
    stocked.add_to_cart(cart_id, TEA, 2)

    order_id = place_order_of(stocked, cart_id)

    order = stocked.get_order(order_id)
    assert order.order_id == order_id
    assert order.cart_id == cart_id
    assert order.customer_id == "customer-42"
    assert order.status == "placed"
    assert order.lines == (Line(TEA, 2, TEA_PRICE),)
    assert order.total == Decimal("12.40")


def test_an_order_goes_from_confirmed_to_shipped_through_the_shop(
    stocked: Shop,
) -> None:
    cart_id = stocked.open_cart("customer-42")
    stocked.add_to_cart(cart_id, TEA, 2)
    order_id = place_order_of(stocked, cart_id)
    stocked.orders.confirm(order_id)

    stocked.pay_order(order_id)
    assert stocked.get_order(order_id).status == "paid"
    stocked.ship_order(order_id)

    assert stocked.get_order(order_id).status == "shipped"


def test_cancel_order_records_the_reason_or_a_default(stocked: Shop) -> None:
    orders = []
    for customer in ("customer-1", "customer-2"):
        cart_id = stocked.open_cart(customer)
        stocked.add_to_cart(cart_id, TEA, 1)
        order_id = place_order_of(stocked, cart_id)
        stocked.orders.confirm(order_id)
        orders.append(order_id)

    stocked.cancel_order(orders[0], " changed my mind ")
    stocked.cancel_order(orders[1])

    first, second = (stocked.get_order(order_id) for order_id in orders)
    assert (first.status, first.cancellation_reason) == ("cancelled", "changed my mind")
    assert (second.status, second.cancellation_reason) == (
        "cancelled",
        "cancelled on request",
    )


# -- ids as UUID or text ----------------------------------------------------------


@pytest.mark.parametrize("as_given", ID_FORMS)
def test_every_cart_and_order_method_takes_the_id_as_uuid_or_text(
    stocked: Shop, as_given: IdForm
) -> None:
    cart_id = stocked.open_cart("customer-42")
    abandoned_id = stocked.open_cart("customer-43")
    cancelled_cart_id = stocked.open_cart("customer-44")
    stocked.add_to_cart(as_given(cancelled_cart_id), TEA, 1)
    cancelled_id = place_order_of(stocked, cancelled_cart_id)
    stocked.orders.confirm(cancelled_id)

    stocked.add_to_cart(as_given(cart_id), TEA, 2)
    stocked.add_to_cart(as_given(cart_id), MUG, 1)
    stocked.change_quantity(as_given(cart_id), TEA, 3)
    stocked.remove_from_cart(as_given(cart_id), MUG)
    stocked.abandon_cart(as_given(abandoned_id))
    order_id = stocked.checkout(as_given(cart_id))
    cart = stocked.get_cart(as_given(cart_id))
    stocked.orders.place_order(cart_id, cart.customer_id, list(cart.lines), cart.total)
    stocked.orders.confirm(order_id)
    stocked.pay_order(as_given(order_id))
    stocked.ship_order(as_given(order_id))
    stocked.cancel_order(as_given(cancelled_id), "duplicate")

    assert cart.lines == (Line(TEA, 3, TEA_PRICE),)
    assert stocked.get_cart(as_given(abandoned_id)).status == "abandoned"
    assert stocked.get_order(as_given(order_id)).status == "shipped"
    assert stocked.get_order(as_given(cancelled_id)).status == "cancelled"


# -- views -------------------------------------------------------------------------


def test_views_are_frozen(stocked: Shop) -> None:
    cart_id = stocked.open_cart("customer-42")
    stocked.add_to_cart(cart_id, TEA, 1)
    order_id = place_order_of(stocked, cart_id)
    views: list[object] = [
        stocked.get_stock(TEA),
        stocked.get_cart(cart_id),
        stocked.get_order(order_id),
    ]

    for view in views:
        assert dataclasses.is_dataclass(view)
        for field in dataclasses.fields(view):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(view, field.name, None)


def test_views_hold_no_mutable_state_of_the_aggregate(stocked: Shop) -> None:
    cart_id = stocked.open_cart("customer-42")
    stocked.add_to_cart(cart_id, TEA, 1)
    view = stocked.get_cart(cart_id)

    stocked.add_to_cart(cart_id, MUG, 1)

    assert view.lines == (Line(TEA, 1, TEA_PRICE),)
    assert isinstance(view.lines, tuple)
    assert stocked.get_cart(cart_id).lines == (
        Line(TEA, 1, TEA_PRICE),
        Line(MUG, 1, MUG_PRICE),
    )


# -- opening and closing -----------------------------------------------------------


def test_shop_is_a_context_manager_that_closes_its_services(
    settings: Settings,
) -> None:
    with Shop(settings=settings) as shop:
        shop.register_product(TEA, TEA_NAME, TEA_PRICE)
        services = (shop.carts, shop.orders, shop.inventory)
        assert not any(service.closing.is_set() for service in services)

    assert all(service.closing.is_set() for service in services)


def test_what_one_shop_wrote_another_shop_reads(settings: Settings) -> None:
    with Shop(settings=settings, subscribers="workers") as first:
        first.register_product(TEA, TEA_NAME, TEA_PRICE)
        first.receive_stock(TEA, 7)
        cart_id = first.open_cart("customer-42")
        first.add_to_cart(cart_id, TEA, 2)

    with Shop(settings=settings, subscribers="workers") as second:
        assert second.get_stock(TEA).on_hand == 7
        assert second.get_cart(cart_id).lines == (Line(TEA, 2, TEA_PRICE),)


def test_shop_with_no_arguments_keeps_sqlite_files_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with Shop() as shop:
        shop.register_product(TEA, TEA_NAME, TEA_PRICE)
        engine = shop.settings.engine

    assert engine == "sqlite"
    stored = {path.name for path in (tmp_path / "eventshop-data").iterdir()}
    assert {"carts.sqlite3", "inventory.sqlite3", "orders.sqlite3"} <= stored
    with Shop(data_dir=tmp_path / "eventshop-data", subscribers="workers") as reopened:
        assert reopened.get_stock(TEA).name == TEA_NAME


def test_data_dir_variable_moves_the_sqlite_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path / "elsewhere"))

    with Shop() as shop:
        shop.register_product(TEA, TEA_NAME, TEA_PRICE)

    assert (tmp_path / "elsewhere" / "inventory.sqlite3").is_file()
    assert not (tmp_path / "eventshop-data").exists()


def test_database_url_variable_chooses_the_store(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if settings.engine == "sqlite":
        url = f"sqlite:///{settings.data_dir.resolve()}"
    else:
        assert settings.postgres is not None
        url = postgres_url(settings.postgres.schema)
    monkeypatch.setenv(DATABASE_URL_VARIABLE, url)

    with Shop() as shop:
        assert shop.settings == settings
        shop.register_product(TEA, TEA_NAME, TEA_PRICE)

    assert not (tmp_path / "eventshop-data").exists()
    with Shop(settings=settings, subscribers="workers") as reopened:
        assert reopened.get_stock(TEA).name == TEA_NAME
