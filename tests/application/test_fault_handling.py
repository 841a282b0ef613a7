"""Process managers whose reactions raise, on SQLite and PostgreSQL: retried with
backoff; then halted (``stop``, their default) or parked as dead letters in their
own service's log (``park``) and retried later; and through every fault, stock
and orders are neither lost nor doubled."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest

from application import Settings, Shop
from application.cli import main
from application.config import OnFailure
from application.demo.invariants import check_invariants
from application.services import Inventory
from application.services.batch import Batch
from application.subscribers.fault_handling import SubscriberHaltedError
from application.subscribers.hosting import SubscriberFailedError
from application.subscribers.runner import SubscriberRunner
from application.subscribers.status import subscriber_statuses
from domain.allocation import Allocation, allocation_id
from domain.dead_letter import DeadLetter, DeadLetterStatus, DeadLetterView
from domain.errors import (
    DeadLetterRetryFailedError,
    DeadLetterStateError,
    OrderNotFoundError,
)
from domain.inventory import InventoryItem
from domain.order import Order
from domain.values import inventory_item_id, order_id_for_cart
from tests.projections.runner_testing import eventually
from tests.support.fault_testing import fast, retried_at_once

TEA = "TEA-SENCHA"
STOCK = 20
UNLUCKY_CUSTOMER = "unlucky"


@dataclass
class FlakyAllocation:
    """Stands in for Inventory's reaction to Order.Placed: the unlucky
    customer's orders fail (``failures`` times, or for as long as ``broken``)."""

    react: Callable[[Inventory, Order.Placed, Batch], None]
    failures: int = 0
    broken: bool = False
    error: str = "allocation unavailable"
    failed: int = 0

    def __call__(
        self, inventory: Inventory, placed: Order.Placed, batch: Batch
    ) -> None:
        failing = self.broken or self.failed < self.failures
        if placed.customer_id == UNLUCKY_CUSTOMER and failing:
            self.failed += 1
            raise RuntimeError(self.error)
        self.react(inventory, placed, batch)


@pytest.fixture
def allocation(monkeypatch: pytest.MonkeyPatch) -> FlakyAllocation:
    flaky = FlakyAllocation(Inventory._reactions[Order.Placed])
    monkeypatch.setitem(Inventory._reactions, Order.Placed, flaky)
    return flaky


@pytest.fixture
def open_shop(settings: Settings) -> Iterator[Callable[[OnFailure], Shop]]:
    """Opens a shop (closed after the test) whose allocation process manager
    follows the given policy, in threads of this process (it is patched here)."""
    shops: list[Shop] = []

    def open_with(on_failure: OnFailure) -> Shop:
        shop = Shop(
            settings=settings,
            subscribers="threads",
            fault_policies={"allocation": fast(on_failure)},
        )
        shops.append(shop)
        return shop

    yield open_with
    for shop in shops:
        shop.close()


def stocked(shop: Shop) -> Shop:
    shop.register_product(TEA, "Sencha", "6.20")
    shop.receive_stock(TEA, STOCK)
    return shop


def check_out(shop: Shop, customer: str, quantity: int) -> UUID:
    """Checks a cart out; returns its cart id."""
    cart_id = shop.open_cart(customer)
    shop.add_to_cart(cart_id, TEA, quantity)
    shop.checkout(cart_id)
    return cart_id


def order_status(shop: Shop, cart_id: UUID) -> str:
    return shop.get_order(order_id_for_cart(cart_id)).status


def is_placed(shop: Shop, cart_id: UUID) -> bool:
    """Whether the checkout saga has placed the cart's order yet."""
    try:
        order_status(shop, cart_id)
    except OrderNotFoundError:
        return False
    return True


def reservations_of(shop: Shop, cart_id: UUID) -> list[Any]:
    """Every stored StockReserved of the cart's order, and its allocation events."""
    order_id = order_id_for_cart(cart_id)
    reserved = [
        event
        for event in shop.inventory.events.get(inventory_item_id(TEA))
        if isinstance(event, InventoryItem.StockReserved) and event.order_id == order_id
    ]
    return [*reserved, *shop.inventory.events.get(allocation_id(order_id))]


def assert_sound(shop: Shop) -> None:
    """Stock conserved, every checkout resolved exactly once."""
    checks = check_invariants(shop, compare_views=False)
    assert [check.name for check in checks if not check.ok] == [], checks


def parked_placement(
    shop: Shop, allocation: FlakyAllocation
) -> tuple[Shop, UUID, DeadLetterView]:
    """Given a stocked shop whose allocation fails for good for the unlucky
    customer, who checked out: the shop, the cart, and the placement parked."""
    stocked(shop)
    allocation.broken = True
    unlucky = check_out(shop, UNLUCKY_CUSTOMER, 3)
    shop.wait_until_processed(timeout=30)
    (parked,) = shop.dead_letters.list()
    return shop, unlucky, parked


def allocation_runner(shop: Shop) -> SubscriberRunner:
    (runner,) = [r for r in shop.subscribers.runners if r.name == "allocation"]
    return runner


def test_a_reaction_that_fails_twice_is_retried_and_takes_effect_once(
    open_shop: Callable[[OnFailure], Shop], allocation: FlakyAllocation
) -> None:
    # given a shop whose allocation of the unlucky customer's order fails twice
    shop = stocked(open_shop("stop"))
    allocation.failures = 2

    # when that customer checks out
    cart_id = check_out(shop, UNLUCKY_CUSTOMER, 3)
    shop.wait_until_processed(timeout=30)

    # then the order is confirmed, its stock reserved once, nothing parked
    assert allocation.failed == 2
    assert order_status(shop, cart_id) == "confirmed"
    assert shop.get_stock(TEA).reserved == 3
    assert [type(event) for event in reservations_of(shop, cart_id)] == [
        InventoryItem.StockReserved,
        Allocation.Requested,
        Allocation.Reserved,
    ]
    assert shop.dead_letters.list() == ()
    assert_sound(shop)


def test_with_stop_it_halts_at_the_failing_event_and_resumes_once_fixed(
    open_shop: Callable[[OnFailure], Shop],
    allocation: FlakyAllocation,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given an allocation that always fails for the unlucky customer
    shop = stocked(open_shop("stop"))
    allocation.broken = True

    # when the unlucky customer checks out, then a lucky one
    unlucky = check_out(shop, UNLUCKY_CUSTOMER, 3)
    lucky = check_out(shop, "lucky", 2)
    runner = allocation_runner(shop)
    eventually(lambda: not runner.is_alive, 30, "allocation to halt")
    # (allocation may halt before the checkout saga has placed the lucky order)
    eventually(lambda: is_placed(shop, lucky), 30, "the lucky order's placement")

    # then allocation halted at the unlucky order's placement: neither order
    # was allocated, and its position is still before that event
    halt = runner.error
    assert isinstance(halt, SubscriberHaltedError)
    assert halt.event is not None
    assert halt.event.originator_id == order_id_for_cart(unlucky)
    (placed,) = shop.orders.recorder.select_notifications(start=halt.position, limit=1)
    placed_event = shop.orders.mapper.to_domain_event(placed)
    assert isinstance(placed_event, Order.Placed)
    assert placed_event.customer_id == UNLUCKY_CUSTOMER
    assert order_status(shop, unlucky) == order_status(shop, lucky) == "placed"
    assert shop.get_stock(TEA).reserved == 0
    with pytest.raises(SubscriberFailedError, match="allocation halted at Order"):
        shop.wait_until_processed(timeout=30)
    (status,) = [
        status
        for status in subscriber_statuses(
            shop.subscribers.subscribers, shop.services, shop.views.reports.all()
        )
        if status.name == "allocation"
    ]
    assert status.state == "halted"
    assert status.position == halt.position - 1
    assert status.error_summary is not None
    assert f"at position {halt.position} after 3 attempts" in status.error_summary

    # and `eventshop status` says so, and exits non-zero
    capsys.readouterr()
    storage = ["--database-url", shop.settings.database_url()]
    assert main(["status", *storage]) == 1
    assert "halted" in capsys.readouterr().out

    # when the fault is fixed and the shop restarted
    shop.close()
    allocation.broken = False
    shop = open_shop("stop")
    shop.wait_until_processed(timeout=30)

    # then both orders are confirmed, each reserved once
    assert order_status(shop, unlucky) == order_status(shop, lucky) == "confirmed"
    assert shop.get_stock(TEA).reserved == 3 + 2
    assert len(reservations_of(shop, unlucky)) == len(reservations_of(shop, lucky)) == 3
    assert_sound(shop)


def test_with_park_the_failing_event_is_parked_and_the_next_ones_handled(
    open_shop: Callable[[OnFailure], Shop], allocation: FlakyAllocation
) -> None:
    # given an allocation that always fails for the unlucky customer, told to park
    shop = stocked(open_shop("park"))
    allocation.broken = True

    # when the unlucky customer checks out, then a lucky one
    unlucky = check_out(shop, UNLUCKY_CUSTOMER, 3)
    lucky = check_out(shop, "lucky", 2)
    shop.wait_until_processed(timeout=30)

    # then the lucky order is confirmed, the unlucky one waits as a dead letter
    # stored in Inventory's own log
    assert order_status(shop, lucky) == "confirmed"
    assert order_status(shop, unlucky) == "placed"
    assert shop.get_stock(TEA).reserved == 2
    assert reservations_of(shop, unlucky) == []
    (letter,) = shop.dead_letters.list()
    assert (letter.subscriber, letter.service, letter.event_type) == (
        "allocation",
        "Orders",
        "Order.Placed",
    )
    assert (letter.originator_id, letter.originator_version) == (
        order_id_for_cart(unlucky),
        1,
    )
    assert letter.status == DeadLetterStatus.PARKED
    assert letter.error == "RuntimeError: allocation unavailable"
    stored: object = shop.inventory.repository.get(letter.dead_letter_id)
    assert isinstance(stored, DeadLetter)
    assert shop.dead_letters.list(subscriber="allocation") == (letter,)
    assert shop.dead_letters.list(subscriber="stock") == ()


def test_a_retried_dead_letter_takes_effect_exactly_once(
    open_shop: Callable[[OnFailure], Shop], allocation: FlakyAllocation
) -> None:
    # given the unlucky order's placement parked
    shop, unlucky, parked = parked_placement(open_shop("park"), allocation)

    # when it is retried while the fault lasts, then nothing is written but
    # the new error
    allocation.error = "allocation still unavailable"
    with pytest.raises(DeadLetterRetryFailedError, match="still unavailable"):
        shop.dead_letters.retry(parked.dead_letter_id)
    assert reservations_of(shop, unlucky) == []
    still = shop.dead_letters.get(parked.dead_letter_id)
    assert still.status == DeadLetterStatus.PARKED
    assert still.error == "RuntimeError: allocation still unavailable"

    # when the fault is fixed and it is retried, then the saga completes once
    allocation.broken = False
    retried = shop.dead_letters.retry(parked.dead_letter_id)
    assert retried.status == DeadLetterStatus.RETRIED
    shop.wait_until_processed(timeout=30)
    assert order_status(shop, unlucky) == "confirmed"
    assert shop.get_stock(TEA).reserved == 3

    # when it is retried again, then that is refused and changes nothing
    with pytest.raises(DeadLetterStateError, match="it is retried"):
        shop.dead_letters.retry(parked.dead_letter_id)
    shop.wait_until_processed(timeout=30)
    assert shop.get_stock(TEA).reserved == 3
    assert len(reservations_of(shop, unlucky)) == 3
    assert_sound(shop)


def test_two_retries_at_once_take_effect_once(
    open_shop: Callable[[OnFailure], Shop], allocation: FlakyAllocation
) -> None:
    # given the unlucky order's placement parked, and the fault fixed
    shop, unlucky, parked = parked_placement(open_shop("park"), allocation)
    allocation.broken = False

    # when two callers retry it at the same moment
    outcomes = retried_at_once(shop, parked.dead_letter_id)

    # then one took effect and the other was refused
    assert outcomes == ["refused", "retried"]
    shop.wait_until_processed(timeout=30)
    assert shop.get_stock(TEA).reserved == 3
    assert len(reservations_of(shop, unlucky)) == 3
    assert_sound(shop)


def test_a_discarded_dead_letter_is_never_handled(
    open_shop: Callable[[OnFailure], Shop], allocation: FlakyAllocation
) -> None:
    # given the unlucky order's placement parked
    shop, unlucky, parked = parked_placement(open_shop("park"), allocation)

    # when it is discarded, then it says why, and a later retry is refused
    discarded = shop.dead_letters.discard(parked.dead_letter_id, "order void")
    assert (discarded.status, discarded.discard_reason) == (
        DeadLetterStatus.DISCARDED,
        "order void",
    )
    assert discarded.resolved_at is not None
    allocation.broken = False
    with pytest.raises(DeadLetterStateError, match="it is discarded"):
        shop.dead_letters.retry(parked.dead_letter_id)
    assert shop.dead_letters.list(status="parked") == ()
    assert reservations_of(shop, unlucky) == []
    assert shop.get_stock(TEA).reserved == 0


def test_a_database_error_while_recording_a_batch_leaves_nothing_half_written(
    open_shop: Callable[[OnFailure], Shop], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given Inventory's store failing twice in the middle of recording a batch:
    # after the position check and tracking, before the transaction commits
    shop = stocked(open_shop("park"))
    recorder: Any = shop.inventory.recorder
    insert_events = recorder._insert_events
    failed: list[int] = []

    def fail_twice(cursor: Any, stored_events: Any, **kwargs: Any) -> Any:
        written = insert_events(cursor, stored_events, **kwargs)
        if kwargs.get("tracking") is not None and len(failed) < 2:
            failed.append(kwargs["tracking"].notification_id)
            raise RuntimeError("injected: connection dropped mid-transaction")
        return written

    monkeypatch.setattr(recorder, "_insert_events", fail_twice)

    # when two customers check out
    carts = [check_out(shop, "first", 3), check_out(shop, "second", 4)]
    shop.wait_until_processed(timeout=30)

    # then both are confirmed, their stock reserved once, nothing parked
    assert len(failed) == 2
    assert [order_status(shop, cart_id) for cart_id in carts] == ["confirmed"] * 2
    assert shop.get_stock(TEA).reserved == 3 + 4
    for cart_id in carts:
        assert len(reservations_of(shop, cart_id)) == 3
    assert shop.dead_letters.list() == ()
    assert_sound(shop)
