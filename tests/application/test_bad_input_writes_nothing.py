"""Every refusal of the ``Shop`` is a specific typed error and writes nothing.

All cases share one shop per engine (module scope; the ``world`` fixture of
``tests/conftest.py``): none of them may write, and each checks that the
stores' positions did not move, so sharing is safe.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from domain.errors import (
    CartClosedError,
    CartNotFoundError,
    EmptyCartError,
    InvalidIdError,
    InvalidPriceError,
    InvalidQuantityError,
    InvalidSkuError,
    InvalidTextError,
    ItemNotInCartError,
    OrderNotFoundError,
    OrderStateError,
    ProductAlreadyRegisteredError,
    ProductNotFoundError,
    ShopError,
)
from domain.values import MAX_QUANTITY, MAX_SKU_LENGTH, MAX_TEXT_LENGTH
from tests.application.shop_testing import MUG, TEA, World

MEGABYTE = "x" * 1_000_000
SOME_UUID = UUID("7f1c1e4e-0f5b-4c1e-9a51-3f0c2b8e9d1a")
NEW_SKU = "NEW-1"  # valid and never registered
UNKNOWN_SKU = "NOPE-1"

FAST = hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def assert_refused(
    world: World, call: Callable[[], object], error: type[ShopError]
) -> ShopError:
    """When the call is made, then exactly this error and no new stored event."""
    before = world.shop.log_heads()

    with pytest.raises(ShopError) as refused:
        call()

    assert type(refused.value) is error, repr(refused.value)
    assert world.shop.log_heads() == before
    return refused.value


# -- quantities ------------------------------------------------------------------


def invalid_counts(minimum: int) -> st.SearchStrategy[object]:
    """Anything but an int in [minimum, MAX_QUANTITY]."""
    return st.one_of(
        st.integers(max_value=minimum - 1),
        st.integers(min_value=MAX_QUANTITY + 1),
        st.booleans(),
        st.floats(),
        st.integers(min_value=1, max_value=MAX_QUANTITY).map(float),
        st.integers(min_value=1, max_value=MAX_QUANTITY).map(str),
        st.integers(min_value=1, max_value=MAX_QUANTITY).map(Decimal),
        st.fractions(),
        st.text(max_size=5),
        st.none(),
    )


QuantityCommand = Callable[[World, object], object]

QUANTITY_COMMANDS = [
    pytest.param(
        lambda w, q: w.shop.receive_stock(TEA, q),
        id="receive_stock",
    ),
    pytest.param(
        lambda w, q: w.shop.add_to_cart(w.cart_id, TEA, q),
        id="add_to_cart",
    ),
    pytest.param(
        lambda w, q: w.shop.change_quantity(w.cart_id, TEA, q),
        id="change_quantity",
    ),
]


@pytest.mark.parametrize("command", QUANTITY_COMMANDS)
@FAST
@given(quantity=invalid_counts(minimum=1))
@example(quantity=0)
@example(quantity=-1)
@example(quantity=True)
@example(quantity=False)
@example(quantity=1.0)
@example(quantity=2.5)
@example(quantity="1")
@example(quantity=10**9)
@example(quantity=MAX_QUANTITY + 1)
@example(quantity=Decimal(1))
@example(quantity=Fraction(3, 1))
def test_invalid_quantity_is_refused(
    world: World, command: QuantityCommand, quantity: object
) -> None:
    error = assert_refused(
        world, lambda: command(world, quantity), InvalidQuantityError
    )

    assert isinstance(error, InvalidQuantityError)
    assert error.field == "quantity"
    assert error.value is quantity


@FAST
@given(counted=invalid_counts(minimum=0))
@example(counted=-1)
@example(counted=True)
@example(counted=0.0)
@example(counted="0")
@example(counted=10**9)
def test_invalid_stock_count_is_refused(world: World, counted: object) -> None:
    error = assert_refused(
        world,
        lambda: world.shop.adjust_stock(TEA, counted, "count"),  # type: ignore[arg-type]
        InvalidQuantityError,
    )

    assert isinstance(error, InvalidQuantityError)
    assert error.field == "counted"
    assert error.value is counted


@pytest.mark.parametrize(
    ("call", "field"),
    [
        pytest.param(
            lambda w: w.shop.receive_stock(TEA, MAX_QUANTITY), "quantity", id="stock"
        ),
        pytest.param(
            lambda w: w.shop.add_to_cart(w.cart_id, TEA, MAX_QUANTITY),
            "quantity",
            id="cart-line",
        ),
    ],
)
def test_quantity_that_would_overflow_a_total_is_refused(
    world: World, call: Callable[[World], object], field: str
) -> None:
    error = assert_refused(world, lambda: call(world), InvalidQuantityError)

    assert isinstance(error, InvalidQuantityError)
    assert error.field == field


# -- text: names, customer ids, reasons ----------------------------------------

WHITESPACE = "".join(c for c in map(chr, range(0x110000)) if c.isspace())


CONTROL_CHARACTERS = "".join(map(chr, [*range(0x20), *range(0x7F, 0xA0)]))


def with_a_control_character() -> st.SearchStrategy[str]:
    """Text with a C0 or C1 control character (NUL, tab, newline, ESC, NEL...)
    somewhere, even between other characters."""
    return st.tuples(
        st.text(st.characters(codec="utf-8"), max_size=10),
        st.sampled_from(CONTROL_CHARACTERS),
        st.text(st.characters(codec="utf-8"), max_size=10),
    ).map(lambda parts: "a" + "".join(parts) + "z")


def invalid_texts() -> st.SearchStrategy[object]:
    """Blank text, text too long once stripped, text with a control character,
    or no text at all."""
    return st.one_of(
        st.text(alphabet=WHITESPACE, max_size=40),
        with_a_control_character(),
        st.text(st.characters(codec="utf-8"), min_size=MAX_TEXT_LENGTH + 1).filter(
            lambda text: len(text.strip()) > MAX_TEXT_LENGTH
        ),
        st.integers(),
        st.binary(max_size=10),
        st.none(),
        st.lists(st.text(min_size=1, max_size=3), max_size=2),
    )


TextCommand = Callable[[World, object], object]

TEXT_COMMANDS = [
    pytest.param(
        lambda w, t: w.shop.register_product(NEW_SKU, t, "1.00"),
        "name",
        id="register_product-name",
    ),
    pytest.param(
        lambda w, t: w.shop.adjust_stock(TEA, 10, t),
        "reason",
        id="adjust_stock-reason",
    ),
    pytest.param(
        lambda w, t: w.shop.open_cart(t),
        "customer_id",
        id="open_cart-customer_id",
    ),
    pytest.param(
        lambda w, t: w.shop.cancel_order(w.order_id, t),
        "reason",
        id="cancel_order-reason",
    ),
    pytest.param(
        lambda w, t: w.shop.receive_stock(TEA, 1, actor=t),
        "actor",
        id="receive_stock-actor",
    ),
    pytest.param(
        lambda w, t: w.shop.checkout(w.cart_id, actor=t),
        "actor",
        id="checkout-actor",
    ),
]


@pytest.mark.parametrize(("command", "field"), TEXT_COMMANDS)
@FAST
@given(text=invalid_texts())
@example(text="")
@example(text=" ")
@example(text=" \t\r\n\u00a0\u3000")
@example(text=MEGABYTE)
@example(text="y" * (MAX_TEXT_LENGTH + 1))
@example(text=None)
@example(text=42)
@example(text="a\x00b")
@example(text="\x00")
@example(text="two\nlines")
@example(text="tab\there")
@example(text="bell\x07")
@example(text="del\x7f")
@example(text="next\x85line")
@example(text="csi\x9b")
@example(text="x" * 10_000_000)
def test_invalid_text_is_refused(
    world: World, command: TextCommand, field: str, text: object
) -> None:
    if field == "actor" and text is None:
        return  # no actor given: the command is the system's
    error = assert_refused(world, lambda: command(world, text), InvalidTextError)

    assert isinstance(error, InvalidTextError)
    assert error.field == field


@pytest.mark.parametrize(("command", "field"), TEXT_COMMANDS)
def test_text_that_is_not_unicode_scalar_values_is_refused(
    world: World, command: TextCommand, field: str
) -> None:
    error = assert_refused(world, lambda: command(world, "ab\ud800"), InvalidTextError)

    assert isinstance(error, InvalidTextError)
    assert error.field == field


# -- SKUs ------------------------------------------------------------------------

SKU_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

SkuCommand = Callable[[World, object], object]

SKU_COMMANDS = [
    pytest.param(
        lambda w, s: w.shop.register_product(s, "Name", "1.00"),
        id="register_product",
    ),
    pytest.param(
        lambda w, s: w.shop.receive_stock(s, 1),
        id="receive_stock",
    ),
    pytest.param(
        lambda w, s: w.shop.adjust_stock(s, 1, "count"),
        id="adjust_stock",
    ),
    pytest.param(
        lambda w, s: w.shop.get_stock(s),
        id="get_stock",
    ),
    pytest.param(
        lambda w, s: w.shop.add_to_cart(w.cart_id, s, 1),
        id="add_to_cart",
    ),
    pytest.param(
        lambda w, s: w.shop.change_quantity(w.cart_id, s, 1),
        id="change_quantity",
    ),
    pytest.param(
        lambda w, s: w.shop.remove_from_cart(w.cart_id, s),
        id="remove_from_cart",
    ),
]


def is_valid_sku(value: str) -> bool:
    return (
        0 < len(value) <= MAX_SKU_LENGTH
        and value[0] in SKU_ALPHABET[:36]
        and all(c in SKU_ALPHABET for c in value)
    )


def invalid_skus() -> st.SearchStrategy[object]:
    return st.one_of(
        st.text(max_size=MAX_SKU_LENGTH + 4).filter(lambda s: not is_valid_sku(s)),
        st.text(SKU_ALPHABET, min_size=MAX_SKU_LENGTH + 1),
        st.text(SKU_ALPHABET.lower(), min_size=1, max_size=10).filter(
            lambda s: not is_valid_sku(s)
        ),
        st.integers(),
        st.none(),
    )


@pytest.mark.parametrize("command", SKU_COMMANDS)
@FAST
@given(sku=invalid_skus())
@example(sku="tea-sencha")
@example(sku="Tea-Sencha")
@example(sku="TEA SENCHA")
@example(sku=" TEA-SENCHA")
@example(sku="TEA-SENCHA\n")
@example(sku="-TEA")
@example(sku="")
@example(sku="A" * (MAX_SKU_LENGTH + 1))
@example(sku=MEGABYTE)
@example(sku="TÉA")
@example(sku="TEA\u0661")
@example(sku=b"TEA")
def test_malformed_sku_is_refused(
    world: World, command: SkuCommand, sku: object
) -> None:
    error = assert_refused(world, lambda: command(world, sku), InvalidSkuError)

    assert isinstance(error, InvalidSkuError)
    assert error.value is sku


def test_sku_at_the_length_limit_is_well_formed(world: World) -> None:
    longest = "A" * MAX_SKU_LENGTH

    error = assert_refused(
        world, lambda: world.shop.get_stock(longest), ProductNotFoundError
    )

    assert isinstance(error, ProductNotFoundError)
    assert error.sku == longest


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda w: w.shop.receive_stock(UNKNOWN_SKU, 1), id="receive"),
        pytest.param(
            lambda w: w.shop.adjust_stock(UNKNOWN_SKU, 1, "count"), id="adjust"
        ),
        pytest.param(lambda w: w.shop.get_stock(UNKNOWN_SKU), id="get_stock"),
        pytest.param(
            lambda w: w.shop.add_to_cart(w.cart_id, UNKNOWN_SKU, 1), id="add_to_cart"
        ),
    ],
)
def test_unknown_sku_raises_product_not_found(
    world: World, call: Callable[[World], object]
) -> None:
    error = assert_refused(world, lambda: call(world), ProductNotFoundError)

    assert isinstance(error, ProductNotFoundError)
    assert error.sku == UNKNOWN_SKU


@pytest.mark.parametrize("sku", [UNKNOWN_SKU, MUG])
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda w, sku: w.shop.change_quantity(w.cart_id, sku, 1), id="change"
        ),
        pytest.param(lambda w, sku: w.shop.remove_from_cart(w.cart_id, sku), id="rm"),
    ],
)
def test_sku_not_in_the_cart_raises_item_not_in_cart(
    world: World, call: Callable[[World, str], object], sku: str
) -> None:
    error = assert_refused(world, lambda: call(world, sku), ItemNotInCartError)

    assert isinstance(error, ItemNotInCartError)
    assert (error.cart_id, error.sku) == (world.cart_id, sku)


# -- ids -------------------------------------------------------------------------

IdCommand = Callable[[World, object], object]

CART_ID_COMMANDS = [
    pytest.param(lambda w, i: w.shop.add_to_cart(i, TEA, 1), id="add_to_cart"),
    pytest.param(lambda w, i: w.shop.change_quantity(i, TEA, 1), id="change_qty"),
    pytest.param(lambda w, i: w.shop.remove_from_cart(i, TEA), id="remove"),
    pytest.param(lambda w, i: w.shop.abandon_cart(i), id="abandon_cart"),
    pytest.param(lambda w, i: w.shop.checkout(i), id="checkout"),
    pytest.param(lambda w, i: w.shop.get_cart(i), id="get_cart"),
]
ORDER_ID_COMMANDS = [
    pytest.param(lambda w, i: w.shop.pay_order(i), id="pay_order"),
    pytest.param(lambda w, i: w.shop.ship_order(i), id="ship_order"),
    pytest.param(lambda w, i: w.shop.cancel_order(i, "reason"), id="cancel_order"),
    pytest.param(lambda w, i: w.shop.get_order(i), id="get_order"),
]

MALFORMED_IDS = [
    pytest.param("not-a-uuid", id="text"),
    pytest.param("", id="empty"),
    pytest.param(str(SOME_UUID)[:-1], id="one-digit-short"),
    pytest.param(str(SOME_UUID)[:-1] + "z", id="bad-digit"),
    pytest.param(MEGABYTE, id="1MB"),
    pytest.param(SOME_UUID.hex * 1000, id="repeated-hex"),
    pytest.param(12345, id="int"),
    pytest.param(SOME_UUID.int, id="uuid-as-int"),
    pytest.param(SOME_UUID.bytes, id="uuid-as-bytes"),
    pytest.param(None, id="none"),
    pytest.param(1.5, id="float"),
]


@pytest.mark.parametrize("bad_id", MALFORMED_IDS)
@pytest.mark.parametrize("command", CART_ID_COMMANDS + ORDER_ID_COMMANDS)
def test_malformed_id_is_refused(
    world: World, command: IdCommand, bad_id: object
) -> None:
    error = assert_refused(world, lambda: command(world, bad_id), InvalidIdError)

    assert isinstance(error, InvalidIdError)
    assert error.value is bad_id


@pytest.mark.parametrize("as_text", [False, True], ids=["uuid", "str"])
@pytest.mark.parametrize("command", CART_ID_COMMANDS)
def test_unknown_cart_id_raises_cart_not_found(
    world: World, command: IdCommand, as_text: bool
) -> None:
    unknown = uuid4()

    error = assert_refused(
        world,
        lambda: command(world, str(unknown) if as_text else unknown),
        CartNotFoundError,
    )

    assert isinstance(error, CartNotFoundError)
    assert error.cart_id == unknown


@pytest.mark.parametrize("as_text", [False, True], ids=["uuid", "str"])
@pytest.mark.parametrize("command", ORDER_ID_COMMANDS)
def test_unknown_order_id_raises_order_not_found(
    world: World, command: IdCommand, as_text: bool
) -> None:
    unknown = uuid4()

    error = assert_refused(
        world,
        lambda: command(world, str(unknown) if as_text else unknown),
        OrderNotFoundError,
    )

    assert isinstance(error, OrderNotFoundError)
    assert error.order_id == unknown


@pytest.mark.parametrize("command", ORDER_ID_COMMANDS)
def test_a_cart_id_is_no_order_id(world: World, command: IdCommand) -> None:
    assert_refused(
        world, lambda: command(world, world.checked_out_cart_id), OrderNotFoundError
    )


@pytest.mark.parametrize("command", CART_ID_COMMANDS)
def test_an_order_id_is_no_cart_id(world: World, command: IdCommand) -> None:
    assert_refused(world, lambda: command(world, world.order_id), CartNotFoundError)


# -- prices ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "price",
    [
        pytest.param(-1, id="negative-int"),
        pytest.param(Decimal("-0.01"), id="negative-decimal"),
        pytest.param("-5", id="negative-str"),
        pytest.param(0, id="zero"),
        pytest.param("0.00", id="zero-str"),
        pytest.param(Decimal("-0"), id="minus-zero"),
        pytest.param(6.2, id="float"),
        pytest.param(1.0, id="whole-float"),
        pytest.param(float("nan"), id="float-nan"),
        pytest.param(Decimal("NaN"), id="decimal-nan"),
        pytest.param(Decimal("sNaN"), id="decimal-snan"),
        pytest.param("NaN", id="str-nan"),
        pytest.param("Infinity", id="str-inf"),
        pytest.param(Decimal("Infinity"), id="decimal-inf"),
        pytest.param("abc", id="abc"),
        pytest.param("", id="empty"),
        pytest.param("6,20", id="comma"),
        pytest.param("1.005", id="three-decimals-str"),
        pytest.param(Decimal("6.201"), id="three-decimals"),
        pytest.param("0.001", id="below-a-cent"),
        pytest.param("1e-3", id="exponent-below-a-cent"),
        pytest.param(10**7, id="too-high"),
        pytest.param(Decimal("1000000.01"), id="just-too-high"),
        pytest.param("9" * 40, id="long-str"),
        pytest.param(MEGABYTE, id="1MB"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="none"),
        pytest.param([6], id="list"),
        pytest.param(Fraction(31, 5), id="fraction"),
    ],
)
def test_invalid_price_is_refused(world: World, price: object) -> None:
    error = assert_refused(
        world,
        lambda: world.shop.register_product(NEW_SKU, "Name", price),  # type: ignore[arg-type]
        InvalidPriceError,
    )

    assert isinstance(error, InvalidPriceError)
    assert error.field == "price"


# -- commands the current state refuses ----------------------------------------


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(
            lambda w: w.shop.register_product(TEA, "Again", "1.00"),
            ProductAlreadyRegisteredError,
            id="register-twice",
        ),
        pytest.param(
            lambda w: w.shop.checkout(w.empty_cart_id),
            EmptyCartError,
            id="checkout-empty",
        ),
        pytest.param(
            lambda w: w.shop.add_to_cart(w.checked_out_cart_id, TEA, 1),
            CartClosedError,
            id="add-to-checked-out",
        ),
        pytest.param(
            lambda w: w.shop.change_quantity(w.checked_out_cart_id, MUG, 2),
            CartClosedError,
            id="change-checked-out",
        ),
        pytest.param(
            lambda w: w.shop.remove_from_cart(w.checked_out_cart_id, MUG),
            CartClosedError,
            id="remove-from-checked-out",
        ),
        pytest.param(
            lambda w: w.shop.checkout(w.checked_out_cart_id),
            CartClosedError,
            id="checkout-twice",
        ),
        pytest.param(
            lambda w: w.shop.abandon_cart(w.checked_out_cart_id),
            CartClosedError,
            id="abandon-checked-out",
        ),
        pytest.param(
            lambda w: w.shop.ship_order(w.order_id),
            OrderStateError,
            id="ship-unpaid",
        ),
    ],
)
def test_command_refused_in_the_current_state_writes_nothing(
    world: World, call: Callable[[World], object], error: type[ShopError]
) -> None:
    assert_refused(world, lambda: call(world), error)


def test_every_refused_command_of_this_module_left_the_world_as_built(
    world: World,
) -> None:
    """The shared world is still what ``build_world`` made (nothing slipped in)."""
    shop = world.shop

    assert shop.get_stock(TEA).on_hand == 50
    assert shop.get_stock(MUG).on_hand == 10
    assert shop.get_cart(world.cart_id).version == 2
    assert shop.get_cart(world.empty_cart_id).version == 1
    assert shop.get_cart(world.checked_out_cart_id).status == "checked_out"
    assert shop.get_order(world.order_id).status == "confirmed"
    assert shop.get_stock(TEA).version == 2
