"""A stateful property test: random valid and invalid commands against ``Shop``,
on SQLite and PostgreSQL, each result checked against a plain model of the rules.

The model (``ShopModel``) is written from the rules as a customer would state
them, not from the implementation: products with stock received, counted and
shipped; carts and their lines; a checkout that becomes an order which is
confirmed only if every line can be reserved, else rejected naming the short
SKUs; paying, shipping (the stock leaves) and cancelling (the stock is free
again); unpaid orders cancelled once their payment deadline has passed. It
derives what is reserved from the orders themselves, so a reservation the shop
forgot to release (or released twice) shows up as a difference.

Every command's outcome must match: its return value, or the exact class of
the typed error the model predicts, in which case nothing may have been
written. After the saga settles every view (carts, orders, customer orders,
stock, sales, payment deadlines) must show what the model holds.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import ClassVar, TypeVar
from uuid import UUID

import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from application import Shop
from application.topology import TOPOLOGY
from domain.allocation import Allocation, allocation_id
from domain.errors import (
    CartClosedError,
    CartNotFoundError,
    EmptyCartError,
    InvalidIdError,
    InvalidInputError,
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
    StockBelowReservedError,
)
from domain.order import PAYMENT_NOT_RECEIVED, Order
from domain.values import Line
from projections.read_models.payment_deadlines import payment_deadlines_due
from tests.application.deadline_testing import (
    PAST_DUE,
    FakeClock,
    deadline_settings,
    order_events,
)
from tests.conftest import ENGINES, settings_on

T = TypeVar("T")

# -- the model ------------------------------------------------------------------

OPEN, CHECKED_OUT, ABANDONED = "open", "checked_out", "abandoned"
PLACED, CONFIRMED, REJECTED = "placed", "confirmed", "rejected"
PAID, SHIPPED, CANCELLED = "paid", "shipped", "cancelled"
HOLDS_STOCK = frozenset({CONFIRMED, PAID})
CANCELLABLE = frozenset({CONFIRMED, PAID})

ZERO = Decimal("0.00")

LineTuples = tuple[tuple[str, int, Decimal], ...]
"""Lines as (SKU, quantity, unit price)."""


def as_tuples(lines: Iterable[Line]) -> LineTuples:
    return tuple((line.sku, line.quantity, line.unit_price) for line in lines)


@dataclass
class ProductModel:
    name: str
    price: Decimal
    received: int = 0
    counted_difference: int = 0
    """What stock counts added (or took away) in all."""


@dataclass
class CartModel:
    customer_id: str
    status: str = OPEN
    lines: dict[str, tuple[int, Decimal]] = field(default_factory=dict)
    """SKU -> (quantity, unit price), in the order the SKUs were first added."""
    order_id: UUID | None = None

    @property
    def total(self) -> Decimal:
        return sum((q * price for q, price in self.lines.values()), ZERO)

    @property
    def line_tuples(self) -> LineTuples:
        return tuple((sku, q, price) for sku, (q, price) in self.lines.items())


@dataclass
class OrderModel:
    cart_id: UUID
    customer_id: str
    lines: LineTuples
    total: Decimal
    status: str
    short_skus: tuple[str, ...] = ()
    cancellation_reason: str | None = None
    went_through: set[str] = field(default_factory=set)
    """Every status the order has been in."""

    def move_to(self, status: str) -> None:
        self.status = status
        self.went_through.add(status)


@dataclass
class ShopModel:
    products: dict[str, ProductModel] = field(default_factory=dict)
    carts: dict[UUID, CartModel] = field(default_factory=dict)
    orders: dict[UUID, OrderModel] = field(default_factory=dict)
    customers: set[str] = field(default_factory=set)

    def reserved(self, sku: str) -> int:
        return sum(
            quantity
            for order in self.orders.values()
            if order.status in HOLDS_STOCK
            for line_sku, quantity, _ in order.lines
            if line_sku == sku
        )

    def shipped(self, sku: str) -> int:
        return sum(
            quantity
            for order in self.orders.values()
            if order.status == SHIPPED
            for line_sku, quantity, _ in order.lines
            if line_sku == sku
        )

    def on_hand(self, sku: str) -> int:
        product = self.products[sku]
        return product.received + product.counted_difference - self.shipped(sku)

    def available(self, sku: str) -> int:
        return self.on_hand(sku) - self.reserved(sku)

    def check_out(self, cart_id: UUID, order_id: UUID) -> OrderModel:
        """The cart becomes an order; every line is reserved, or none is."""
        cart = self.carts[cart_id]
        cart.status, cart.order_id = CHECKED_OUT, order_id
        lines = cart.line_tuples
        short = tuple(sorted(sku for sku, q, _ in lines if self.available(sku) < q))
        order = OrderModel(
            cart_id,
            cart.customer_id,
            lines,
            cart.total,
            REJECTED if short else CONFIRMED,
            short_skus=short,
        )
        order.went_through.add(order.status)
        self.orders[order_id] = order
        return order


# -- invalid input the model knows the answers to -------------------------------

BAD_SKUS = ("", "lower-case", " PADDED", "X" * 65, "-LEADING-DASH")
BAD_PRICES: tuple[Decimal | int | str, ...] = (0, "-1.00", "1.001", "lots", "NaN")
PRICES: tuple[Decimal | int | str, ...] = ("0.01", "6.20", 12, Decimal("99.99"))
BAD_TEXT = ("", "   ", "\t\n")
NOT_AN_ID = "not-a-uuid"
CANCEL_REASONS = ("changed my mind", "  found it cheaper  ")


def mostly(
    valid: st.SearchStrategy[T], invalid: st.SearchStrategy[T]
) -> st.SearchStrategy[T]:
    """``valid`` three times in four (shrinking towards it): commands that fail
    at once tell less than the state the valid ones build up."""
    return st.tuples(st.integers(0, 3), valid, invalid).map(
        lambda drawn: drawn[2] if drawn[0] == 3 else drawn[1]
    )


sku_choices = mostly(st.integers(0, 3), st.sampled_from(BAD_SKUS))
"""A number picks one of the example's own SKUs (registered or not: the model
knows which); a string is a malformed SKU."""
quantities = mostly(st.integers(1, 4), st.integers(-1, 0))
customer_choices = mostly(
    st.tuples(st.sampled_from(("", "  ")), st.integers(0, 2)),
    st.tuples(st.sampled_from(BAD_TEXT), st.just(-1)),
)
"""(padding, number): a customer of the example, perhaps padded with white space
the shop strips; number -1 is blank text."""
cart_lines = st.lists(
    st.tuples(st.integers(0, 2), st.integers(1, 4)), min_size=1, max_size=3
)
"""(SKU number, quantity) to add: any of the example's SKUs, registered or not."""


class ShopMachine(RuleBasedStateMachine):
    """Commands against one shop, each checked against ``ShopModel``."""

    carts = Bundle[UUID]("carts")
    """The example's carts, in any state (ids nothing has: ``unknown_ids``)."""
    orders = Bundle[UUID]("orders")
    """The example's orders, in any state."""

    # Set by the test on a subclass: hypothesis builds the machine itself.
    shop: ClassVar[Shop]
    clock: ClassVar[FakeClock]

    def __init__(self) -> None:
        super().__init__()
        self.model = ShopModel()
        # The shop is shared by every example (see ``shops``): each example's
        # SKUs and customers are its own, so nothing an earlier one left behind
        # can be mistaken for this one's.
        self.tag = uuid.uuid4().hex[:10].upper()
        # The process managers (checkout, allocation, confirmation): the
        # subscribers that write events.
        self.saga = [manager.name for manager in TOPOLOGY.process_managers]

    # -- helpers -------------------------------------------------------------

    def sku(self, choice: int | str) -> str:
        return f"P{self.tag}-{choice}" if isinstance(choice, int) else choice

    def customer(self, choice: tuple[str, int]) -> tuple[str, str | None]:
        """What to pass, and the customer id the shop should keep (None: blank)."""
        padding, number = choice
        if number < 0:
            return padding, None
        customer_id = f"customer-{self.tag}-{number}"
        return f"{padding}{customer_id}{padding}", customer_id

    def attempt(
        self, expected: type[ShopError] | None, command: Callable[[], T]
    ) -> T | None:
        """Runs the command; it must succeed if ``expected`` is None, else raise
        exactly ``expected`` and write nothing."""
        heads = self.shop.log_heads()
        refusal: ShopError | None = None
        try:
            result = command()
        except ShopError as error:
            refusal = error
        if refusal is None:
            assert expected is None, f"succeeded; the model expected {expected}"
            return result
        assert type(refusal) is expected, (
            f"raised {refusal!r}; the model expected "
            f"{'success' if expected is None else expected.__name__}"
        )
        assert self.shop.log_heads() == heads, "a refused command wrote"
        return None

    def settle(self, *, views: bool = False) -> None:
        """Waits for the saga (and the views too if asked): what the model did
        at once, the shop does through its subscribers. Each step that sets the
        saga off waits for it, so the next one starts from a settled shop, as
        the model does (a later checkout's allocation must not race an earlier
        cancellation's release)."""
        self.shop.wait_until_processed(timeout=30, only=None if views else self.saga)

    def cart_error(self, cart_id: UUID | str) -> type[ShopError] | None:
        """Parsing the id, then loading the cart, then "is it open?"."""
        if not isinstance(cart_id, UUID):
            return InvalidIdError
        cart = self.model.carts.get(cart_id)
        if cart is None:
            return CartNotFoundError
        return None if cart.status == OPEN else CartClosedError

    def order_error(
        self, order_id: UUID | str, allowed: frozenset[str]
    ) -> type[ShopError] | None:
        if not isinstance(order_id, UUID):
            return InvalidIdError
        order = self.model.orders.get(order_id)
        if order is None:
            return OrderNotFoundError
        return None if order.status in allowed else OrderStateError

    def check_cart(self, cart_id: UUID) -> None:
        cart = self.model.carts[cart_id]
        view = self.shop.get_cart(cart_id)
        assert (view.customer_id, view.status, view.order_id) == (
            cart.customer_id,
            cart.status,
            cart.order_id,
        )
        assert as_tuples(view.lines) == cart.line_tuples
        assert view.total == cart.total

    def check_order(self, order_id: UUID) -> None:
        order = self.model.orders[order_id]
        view = self.shop.get_order(order_id)
        assert view.status == order.status, order_id
        assert (view.cart_id, view.customer_id, view.total) == (
            order.cart_id,
            order.customer_id,
            order.total,
        )
        assert as_tuples(view.lines) == order.lines
        assert view.short_skus == order.short_skus
        assert (view.rejection_reason is not None) == (order.status == REJECTED)
        self.check_cancellation_reason(view.cancellation_reason, order)

    @staticmethod
    def check_cancellation_reason(reason: str | None, order: OrderModel) -> None:
        if order.cancellation_reason == PAYMENT_NOT_RECEIVED:
            # "... by <deadline>": the deadline is the shop's to choose.
            assert reason is not None
            assert reason.startswith(PAYMENT_NOT_RECEIVED)
        else:
            assert reason == order.cancellation_reason

    # -- products and stock --------------------------------------------------

    @initialize(first=st.integers(0, 8), second=st.integers(0, 8))
    def stock_two_products(self, first: int, second: int) -> None:
        for number, quantity in ((0, first), (1, second)):
            self.register(number, PRICES[number])
            if quantity:
                self.receive(number, quantity)

    @rule(choice=sku_choices, price=st.sampled_from(PRICES + BAD_PRICES))
    def register(self, choice: int | str, price: Decimal | int | str) -> None:
        sku = self.sku(choice)
        expected: type[ShopError] | None = None
        if not isinstance(choice, int):
            expected = InvalidSkuError
        elif price in BAD_PRICES:
            expected = InvalidPriceError
        elif sku in self.model.products:
            expected = ProductAlreadyRegisteredError
        name = f"Product {sku}"
        result = self.attempt(
            expected, lambda: self.shop.register_product(sku, name, price)
        )
        if expected is None:
            assert result == sku
            self.model.products[sku] = ProductModel(name, Decimal(price))

    @rule(choice=sku_choices, quantity=quantities)
    def receive(self, choice: int | str, quantity: int) -> None:
        sku = self.sku(choice)
        expected: type[ShopError] | None = None
        if not isinstance(choice, int):
            expected = InvalidSkuError
        elif sku not in self.model.products:
            expected = ProductNotFoundError
        elif quantity < 1:
            expected = InvalidQuantityError
        self.attempt(expected, lambda: self.shop.receive_stock(sku, quantity))
        if expected is None:
            self.model.products[sku].received += quantity

    @rule(
        choice=sku_choices,
        counted=st.integers(-1, 12),
        reason=st.sampled_from(("stock count", *BAD_TEXT)),
    )
    def count_stock(self, choice: int | str, counted: int, reason: str) -> None:
        sku = self.sku(choice)
        expected: type[ShopError] | None = None
        if not isinstance(choice, int):
            expected = InvalidSkuError
        elif sku not in self.model.products:
            expected = ProductNotFoundError
        elif counted < 0:
            expected = InvalidQuantityError
        elif reason in BAD_TEXT:
            expected = InvalidTextError
        elif counted < self.model.reserved(sku):
            expected = StockBelowReservedError
        self.attempt(expected, lambda: self.shop.adjust_stock(sku, counted, reason))
        if expected is None:
            self.model.products[sku].counted_difference += counted - (
                self.model.on_hand(sku)
            )

    # -- carts ---------------------------------------------------------------

    @rule(target=carts, choice=customer_choices)
    def open_cart(self, choice: tuple[str, int]) -> MultipleResults[UUID]:
        cart_id = self.opened_cart(choice)
        return multiple() if cart_id is None else multiple(cart_id)

    def opened_cart(self, choice: tuple[str, int]) -> UUID | None:
        given, customer_id = self.customer(choice)
        expected = InvalidTextError if customer_id is None else None
        cart_id = self.attempt(expected, lambda: self.shop.open_cart(given))
        if cart_id is None or customer_id is None:
            return None
        assert cart_id not in self.model.carts
        self.model.carts[cart_id] = CartModel(customer_id)
        self.model.customers.add(customer_id)
        self.check_cart(cart_id)
        return cart_id

    @rule(
        target=carts,
        customer=st.integers(0, 2),
        lines=cart_lines,
    )
    def fill_cart(
        self, customer: int, lines: list[tuple[int, int]]
    ) -> MultipleResults[UUID]:
        """A cart with something in it, the shortest way to a checkout."""
        return multiple(self.filled_cart(customer, lines))

    def filled_cart(self, customer: int, lines: list[tuple[int, int]]) -> UUID:
        cart_id = self.opened_cart(("", customer))
        assert cart_id is not None
        for number, quantity in lines:
            self.add(cart_id, number, quantity)
        return cart_id

    @rule(target=orders, customer=st.integers(0, 2), lines=cart_lines)
    def buy(self, customer: int, lines: list[tuple[int, int]]) -> MultipleResults[UUID]:
        """Fills a cart and checks it out: most examples should reach the saga."""
        order_id = self.checked_out(self.filled_cart(customer, lines))
        return multiple() if order_id is None else multiple(order_id)

    @rule(cart_id=carts, choice=sku_choices, quantity=quantities)
    def add(self, cart_id: UUID | str, choice: int | str, quantity: int) -> None:
        sku = self.sku(choice)
        # The shop parses the id, then looks up the product's price, then the cart.
        expected: type[ShopError] | None
        if not isinstance(cart_id, UUID):
            expected = InvalidIdError
        elif not isinstance(choice, int):
            expected = InvalidSkuError
        elif sku not in self.model.products:
            expected = ProductNotFoundError
        else:
            expected = self.cart_error(cart_id)
            if expected is None and quantity < 1:
                expected = InvalidQuantityError
        self.attempt(expected, lambda: self.shop.add_to_cart(cart_id, sku, quantity))
        if expected is None:
            assert isinstance(cart_id, UUID)
            lines = self.model.carts[cart_id].lines
            before, _ = lines.get(sku, (0, ZERO))
            lines[sku] = (before + quantity, self.model.products[sku].price)
            self.check_cart(cart_id)

    @rule(cart_id=carts, choice=sku_choices, quantity=quantities)
    def change(self, cart_id: UUID | str, choice: int | str, quantity: int) -> None:
        sku = self.sku(choice)
        # The cart first, then what is asked of it.
        expected = self.cart_error(cart_id)
        if expected is None:
            assert isinstance(cart_id, UUID)
            if not isinstance(choice, int):
                expected = InvalidSkuError
            elif quantity < 1:
                expected = InvalidQuantityError
            elif sku not in self.model.carts[cart_id].lines:
                expected = ItemNotInCartError
        self.attempt(
            expected, lambda: self.shop.change_quantity(cart_id, sku, quantity)
        )
        if expected is None:
            assert isinstance(cart_id, UUID)
            lines = self.model.carts[cart_id].lines
            lines[sku] = (quantity, lines[sku][1])
            self.check_cart(cart_id)

    @rule(cart_id=carts, choice=sku_choices)
    def remove(self, cart_id: UUID | str, choice: int | str) -> None:
        sku = self.sku(choice)
        expected = self.cart_error(cart_id)
        if expected is None:
            assert isinstance(cart_id, UUID)
            if not isinstance(choice, int):
                expected = InvalidSkuError
            elif sku not in self.model.carts[cart_id].lines:
                expected = ItemNotInCartError
        self.attempt(expected, lambda: self.shop.remove_from_cart(cart_id, sku))
        if expected is None:
            assert isinstance(cart_id, UUID)
            del self.model.carts[cart_id].lines[sku]
            self.check_cart(cart_id)

    @rule(cart_id=carts)
    def abandon(self, cart_id: UUID | str) -> None:
        expected = self.cart_error(cart_id)
        self.attempt(expected, lambda: self.shop.abandon_cart(cart_id))
        if expected is None:
            assert isinstance(cart_id, UUID)
            self.model.carts[cart_id].status = ABANDONED
            self.check_cart(cart_id)

    @rule(target=orders, cart_id=carts)
    def checkout(self, cart_id: UUID | str) -> MultipleResults[UUID]:
        order_id = self.checked_out(cart_id)
        return multiple() if order_id is None else multiple(order_id)

    def checked_out(self, cart_id: UUID | str) -> UUID | None:
        """Checks the cart out and waits for the saga to place, and confirm or
        reject, its order."""
        expected = self.cart_error(cart_id)
        if expected is None:
            assert isinstance(cart_id, UUID)
            if not self.model.carts[cart_id].lines:
                expected = EmptyCartError
        order_id = self.attempt(expected, lambda: self.shop.checkout(cart_id))
        if order_id is None:
            return None
        assert isinstance(cart_id, UUID)
        assert order_id not in self.model.orders
        self.settle()
        self.model.check_out(cart_id, order_id)
        self.check_cart(cart_id)
        self.check_order(order_id)
        return order_id

    # -- orders --------------------------------------------------------------

    @rule(order_id=orders)
    def pay(self, order_id: UUID | str) -> None:
        expected = self.order_error(order_id, frozenset({CONFIRMED}))
        self.attempt(expected, lambda: self.shop.pay_order(order_id))
        if expected is None:
            assert isinstance(order_id, UUID)
            self.model.orders[order_id].move_to(PAID)
            self.check_order(order_id)

    @rule(order_id=orders)
    def ship(self, order_id: UUID | str) -> None:
        expected = self.order_error(order_id, frozenset({PAID}))
        self.attempt(expected, lambda: self.shop.ship_order(order_id))
        if expected is None:
            assert isinstance(order_id, UUID)
            self.settle()
            self.model.orders[order_id].move_to(SHIPPED)
            self.check_order(order_id)

    @rule(order_id=orders)
    def deliver(self, order_id: UUID) -> None:
        """Pays and ships: a shipment needs a payment first, which random
        steps seldom line up."""
        self.pay(order_id)
        self.ship(order_id)

    @rule(order_id=orders, reason=st.sampled_from((*CANCEL_REASONS, *BAD_TEXT)))
    def cancel(self, order_id: UUID | str, reason: str) -> None:
        # The shop parses the id and the reason before it loads the order.
        if not isinstance(order_id, UUID):
            expected: type[ShopError] | None = InvalidIdError
        elif reason in BAD_TEXT:
            expected = InvalidTextError
        else:
            expected = self.order_error(order_id, CANCELLABLE)
        self.attempt(expected, lambda: self.shop.cancel_order(order_id, reason))
        if expected is None:
            assert isinstance(order_id, UUID)
            self.settle()
            order = self.model.orders[order_id]
            order.move_to(CANCELLED)
            order.cancellation_reason = reason.strip()
            self.check_order(order_id)

    @rule()
    def let_payment_deadlines_pass(self) -> None:
        """Every order confirmed so far and still unpaid is cancelled."""
        due = {
            order_id
            for order_id, order in self.model.orders.items()
            if order.status == CONFIRMED
        }
        # The ticker reads the deadlines from their view.
        self.settle(views=True)
        self.clock.now = datetime.now(UTC) + PAST_DUE
        cancelled = self.shop.payment_deadlines.fire_due()
        # Earlier examples' orders, left unpaid on the shared shop, expire too.
        assert set(cancelled) & self.model.orders.keys() == due
        self.settle()
        for order_id in due:
            order = self.model.orders[order_id]
            order.move_to(CANCELLED)
            order.cancellation_reason = PAYMENT_NOT_RECEIVED
            self.check_order(order_id)

    @rule(
        cart_id=st.one_of(st.uuids(), st.just(NOT_AN_ID)),
        order_id=st.one_of(st.uuids(), st.just(NOT_AN_ID)),
        choice=sku_choices,
        quantity=quantities,
    )
    def unknown_ids(
        self,
        cart_id: UUID | str,
        order_id: UUID | str,
        choice: int | str,
        quantity: int,
    ) -> None:
        """Every command and read on an id nothing has (or a malformed one);
        in one rule so that the others spend their steps on the example's own."""
        self.add(cart_id, choice, quantity)
        self.change(cart_id, choice, quantity)
        self.remove(cart_id, choice)
        self.abandon(cart_id)
        self.checked_out(cart_id)
        self.pay(order_id)
        self.ship(order_id)
        self.cancel(order_id, CANCEL_REASONS[0])
        for read, value, missing in (
            (self.shop.get_cart, cart_id, CartNotFoundError),
            (self.shop.get_order, order_id, OrderNotFoundError),
            (self.shop.queries.cart, cart_id, None),
            (self.shop.queries.order, order_id, None),
        ):
            expected = InvalidIdError if isinstance(value, str) else missing
            assert self.attempt(expected, partial(read, value)) is None
        unknown = self.sku(99)
        self.attempt(ProductNotFoundError, lambda: self.shop.get_stock(unknown))
        assert self.shop.queries.stock_level(unknown) is None
        # A filter the views cannot answer is bad input, not an empty answer.
        queries = self.shop.queries
        bad_filters: list[tuple[type[ShopError], Callable[[], object]]] = [
            (InvalidInputError, partial(queries.orders, status="lost")),
            (InvalidInputError, partial(queries.orders, limit=0)),
            (InvalidInputError, partial(queries.orders, offset=-1)),
            (InvalidTextError, partial(queries.orders, customer_id=" ")),
            (InvalidTextError, partial(queries.customer_history, "")),
            (InvalidSkuError, partial(queries.stock_level, "lower-case")),
        ]
        for refusal, bad_filter in bad_filters:
            self.attempt(refusal, bad_filter)

    # -- what must hold ------------------------------------------------------

    @invariant()
    def stock_is_conserved_and_never_negative(self) -> None:
        for sku, product in self.model.products.items():
            stock = self.shop.get_stock(sku)
            on_hand, reserved = self.model.on_hand(sku), self.model.reserved(sku)
            assert 0 <= reserved <= on_hand, sku
            assert (stock.on_hand, stock.reserved, stock.available) == (
                on_hand,
                reserved,
                on_hand - reserved,
            ), sku
            assert (stock.name, stock.price) == (product.name, product.price)

    @rule()
    def views_match_the_model(self) -> None:
        self.settle(views=True)
        self.check_views()

    def teardown(self) -> None:
        # Teardown runs after a failure too (inside hypothesis's ``finally``);
        # then it only lets the shop settle for the next example, and the
        # first error stays the one reported.
        failed = sys.exc_info()[1] is not None
        with contextlib.suppress(Exception) if failed else contextlib.nullcontext():
            self.settle(views=True)
        if failed:
            return
        self.check_views()
        for cart_id in self.model.carts:
            self.check_cart(cart_id)
        for order_id in self.model.orders:
            self.check_order(order_id)
            self.check_resolved_once(order_id)

    def check_resolved_once(self, order_id: UUID) -> None:
        kinds = Counter(type(event) for event in order_events(self.shop, order_id))
        assert kinds[Order.Placed] == 1, order_id
        assert kinds[Order.Confirmed] + kinds[Order.Rejected] == 1, order_id
        assert kinds[Order.Cancelled] <= 1, order_id
        # Inventory answered once, and settled the stock as the order ended.
        answers = Counter(
            type(event)
            for event in self.shop.inventory.events.get(allocation_id(order_id))
        )
        status = self.model.orders[order_id].status
        expected: list[type[object]] = [
            Allocation.Requested,
            Allocation.Refused if status == REJECTED else Allocation.Reserved,
        ]
        if status == CANCELLED:
            expected.append(Allocation.Released)
        if status == SHIPPED:
            expected.append(Allocation.Committed)
        assert answers == Counter(expected), order_id

    def check_views(self) -> None:
        queries = self.shop.queries
        for cart_id, cart in self.model.carts.items():
            summary = queries.cart(cart_id)
            assert summary is not None, cart_id
            assert (summary.customer_id, summary.status, summary.order_id) == (
                cart.customer_id,
                cart.status,
                cart.order_id,
            )
            assert as_tuples(summary.lines) == cart.line_tuples
            assert summary.item_count == sum(q for q, _ in cart.lines.values())
            assert summary.total == cart.total

        for order_id, order in self.model.orders.items():
            row = queries.order(order_id)
            assert row is not None, order_id
            assert (row.status, row.customer_id, row.cart_id, row.total) == (
                order.status,
                order.customer_id,
                order.cart_id,
                order.total,
            )
            assert as_tuples(row.lines) == order.lines
            assert row.short_skus == order.short_skus
            assert (row.rejection_reason is not None) == (order.status == REJECTED)
            self.check_cancellation_reason(row.cancellation_reason, order)
            stamps = {
                CONFIRMED: row.confirmed_at,
                REJECTED: row.rejected_at,
                PAID: row.paid_at,
                SHIPPED: row.shipped_at,
                CANCELLED: row.cancelled_at,
            }
            assert {status for status, at in stamps.items() if at} == (
                order.went_through
            ), order_id

        for customer_id in self.model.customers:
            own = {
                order_id: order
                for order_id, order in self.model.orders.items()
                if order.customer_id == customer_id
            }
            # Newest first: each checkout was placed after the one before had
            # settled, so the reverse of the order they were made in.
            newest_first = list(reversed(own))
            listed = queries.orders(customer_id=customer_id)
            assert [row.order_id for row in listed] == newest_first
            for status in (PLACED, CONFIRMED, REJECTED, PAID, SHIPPED, CANCELLED):
                assert {
                    row.order_id
                    for row in queries.orders(status=status, customer_id=customer_id)
                } == {order_id for order_id, o in own.items() if o.status == status}

            history = queries.customer_history(customer_id)
            assert [(o.order_id, o.status, o.total) for o in history.orders] == [
                (order_id, own[order_id].status, own[order_id].total)
                for order_id in newest_first
            ]
            shipped = [o for o in own.values() if o.status == SHIPPED]
            assert (
                history.orders_placed,
                history.orders_shipped,
                history.amount_spent,
            ) == (len(own), len(shipped), sum((o.total for o in shipped), ZERO))

        prefix = f"P{self.tag}-"
        levels = {
            level.sku: level
            for level in queries.stock_levels()
            if level.sku.startswith(prefix)
        }
        assert levels.keys() == self.model.products.keys()
        for sku, product in self.model.products.items():
            level = levels[sku]
            assert level == queries.stock_level(sku)
            on_hand, reserved = self.model.on_hand(sku), self.model.reserved(sku)
            assert (
                level.name,
                level.price,
                level.on_hand,
                level.reserved,
                level.available,
            ) == (product.name, product.price, on_hand, reserved, on_hand - reserved)

        sold: dict[str, tuple[int, Decimal, int]] = {}
        for order in self.model.orders.values():
            if order.status != SHIPPED:
                continue
            for sku, quantity, price in order.lines:
                units, revenue, count = sold.get(sku, (0, ZERO, 0))
                sold[sku] = (units + quantity, revenue + quantity * price, count + 1)
        assert {
            row.sku: (row.units_sold, row.revenue, row.orders_shipped)
            for row in queries.product_sales()
            if row.sku.startswith(prefix)
        } == sold

        # Far enough ahead for every deadline: the open ones are the orders
        # confirmed and not yet paid or cancelled.
        far_ahead = datetime.now(UTC) + 10 * PAST_DUE
        open_deadlines = {
            deadline.order_id
            for deadline in payment_deadlines_due(self.shop.views, far_ahead)
        }
        assert open_deadlines & self.model.orders.keys() == {
            order_id
            for order_id, order in self.model.orders.items()
            if order.status == CONFIRMED
        }


# -- running it on both engines ---------------------------------------------------


@pytest.fixture(scope="module", params=ENGINES)
def shops(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Shop, FakeClock]]:
    """One embedded shop per engine for every example: starting a shop and its
    subscriber process per example would cost more than the example itself.
    Examples keep apart by their own SKUs and customers (``ShopMachine.tag``),
    and each settles the saga before it ends, so none leaves work running
    into the next."""
    clock = FakeClock()
    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(
            settings_on(request.param, tmp_path_factory.mktemp("data"))
        )
        # The shop's own ticker never fires: deadlines pass when a rule says.
        shop = stack.enter_context(
            Shop(settings=deadline_settings(settings), clock=clock)
        )
        yield shop, clock


@pytest.mark.slow
def test_shop_matches_a_model_of_its_rules(shops: tuple[Shop, FakeClock]) -> None:
    class OnThisShop(ShopMachine):
        shop, clock = shops

    run_state_machine_as_test(
        OnThisShop,
        settings=hypothesis_settings(
            max_examples=15,
            stateful_step_count=40,
            deadline=None,
        ),
    )
