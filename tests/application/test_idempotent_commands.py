"""Commands given an idempotency key: a repeat answers from the first try's
receipt and writes nothing, on SQLite and on PostgreSQL."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import Recording

from application import Settings, Shop
from domain.command_receipt import CommandReceipt, receipt_id
from domain.errors import (
    CartClosedError,
    IdempotencyKeyReusedError,
    InvalidIdempotencyKeyError,
)
from tests.application.idempotent_racers import (
    STOCK_PER_DELIVERY,
    RaceReport,
    RaceTask,
    race_with_keys,
)
from tests.application.shop_testing import TEA, TEA_NAME


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def keyed_shop(settings: Settings, clock: FrozenClock) -> Iterator[Shop]:
    """A shop whose keys hold for an hour of ``clock``'s time, with tea in stock."""
    settings = replace(settings, idempotency_ttl=timedelta(hours=1))
    with Shop(settings=settings, subscribers="workers", clock=clock) as shop:
        shop.register_product(TEA, TEA_NAME, "6.20")
        shop.receive_stock(TEA, 10)
        yield shop


# -- a repeat ------------------------------------------------------------------


def test_a_repeated_delivery_is_received_once_and_writes_nothing(
    keyed_shop: Shop,
) -> None:
    keyed_shop.receive_stock(TEA, 5, idempotency_key="delivery-1")
    heads = keyed_shop.log_heads()

    keyed_shop.receive_stock(TEA, 5, idempotency_key="delivery-1")

    assert keyed_shop.get_stock(TEA).on_hand == 15
    assert keyed_shop.log_heads() == heads


def test_a_repeated_open_cart_returns_the_cart_the_first_try_opened(
    keyed_shop: Shop,
) -> None:
    first = keyed_shop.open_cart("alice", idempotency_key="open-1")
    heads = keyed_shop.log_heads()

    again = keyed_shop.open_cart("alice", idempotency_key="open-1")

    assert again == first
    assert keyed_shop.log_heads() == heads
    assert keyed_shop.get_cart(first).customer_id == "alice"


def test_a_repeated_registration_returns_the_sku_instead_of_refusing_it(
    keyed_shop: Shop,
) -> None:
    keyed_shop.register_product("MUG-01", "Mug", "12.50", idempotency_key="reg-1")

    again = keyed_shop.register_product(
        "MUG-01", "Mug", "12.50", idempotency_key="reg-1"
    )

    assert again == "MUG-01"


def test_a_repeated_checkout_returns_the_order_id_instead_of_refusing_it(
    keyed_shop: Shop,
) -> None:
    cart = keyed_shop.open_cart("alice")
    keyed_shop.add_to_cart(cart, TEA, 2)
    order = keyed_shop.checkout(cart, idempotency_key="checkout-1")
    heads = keyed_shop.log_heads()

    again = keyed_shop.checkout(cart, idempotency_key="checkout-1")

    assert again == order
    assert keyed_shop.log_heads() == heads
    with pytest.raises(CartClosedError):
        keyed_shop.checkout(cart, idempotency_key="checkout-2")


def test_without_a_key_a_repeat_is_a_new_command(keyed_shop: Shop) -> None:
    keyed_shop.receive_stock(TEA, 5)
    keyed_shop.receive_stock(TEA, 5)

    assert keyed_shop.get_stock(TEA).on_hand == 20


def test_a_repeat_of_a_command_that_was_refused_is_refused_again(
    keyed_shop: Shop,
) -> None:
    cart = keyed_shop.open_cart("alice")
    keyed_shop.abandon_cart(cart)
    heads = keyed_shop.log_heads()

    for _ in range(2):
        with pytest.raises(CartClosedError):
            keyed_shop.add_to_cart(cart, TEA, 1, idempotency_key="add-1")

    assert keyed_shop.log_heads() == heads


def test_the_receipt_is_stored_with_the_command_so_a_lost_reply_is_safe(
    keyed_shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write is stored and then the reply is lost (a timeout, a dropped
    connection): the client cannot know, and tries again with the same key."""
    inventory = keyed_shop.inventory
    real_save = inventory.save

    def save_then_lose_the_reply(*objs: Any, **kwargs: Any) -> list[Recording[Any]]:
        real_save(*objs, **kwargs)
        raise TimeoutError("the reply was lost")

    monkeypatch.setattr(inventory, "save", save_then_lose_the_reply)
    with pytest.raises(TimeoutError):
        keyed_shop.receive_stock(TEA, 5, idempotency_key="delivery-1")
    monkeypatch.undo()

    keyed_shop.receive_stock(TEA, 5, idempotency_key="delivery-1")

    assert keyed_shop.get_stock(TEA).on_hand == 15


# -- a key given to something else ---------------------------------------------


def test_the_same_key_with_other_arguments_is_refused_and_writes_nothing(
    keyed_shop: Shop,
) -> None:
    keyed_shop.receive_stock(TEA, 5, idempotency_key="delivery-1")
    heads = keyed_shop.log_heads()

    with pytest.raises(IdempotencyKeyReusedError) as refused:
        keyed_shop.receive_stock(TEA, 6, idempotency_key="delivery-1")

    assert "other arguments" in str(refused.value)
    assert keyed_shop.log_heads() == heads
    assert keyed_shop.get_stock(TEA).on_hand == 15


def test_the_same_key_for_another_command_is_refused(keyed_shop: Shop) -> None:
    keyed_shop.receive_stock(TEA, 5, idempotency_key="k-1")

    with pytest.raises(IdempotencyKeyReusedError) as refused:
        keyed_shop.adjust_stock(TEA, 3, "recount", idempotency_key="k-1")

    assert refused.value.held_by == "receive_stock"
    assert refused.value.given_to == "adjust_stock"
    assert keyed_shop.get_stock(TEA).on_hand == 15


@pytest.mark.parametrize(
    "key",
    ["", "x" * 201, "with space", "nul\x00", "tab\t", "é", 42, None.__class__],
)
def test_a_malformed_key_is_refused_and_writes_nothing(
    keyed_shop: Shop, key: Any
) -> None:
    heads = keyed_shop.log_heads()

    with pytest.raises(InvalidIdempotencyKeyError):
        keyed_shop.receive_stock(TEA, 5, idempotency_key=key)

    assert keyed_shop.log_heads() == heads


# -- expiry --------------------------------------------------------------------


def test_a_key_holds_until_it_expires_and_may_then_be_used_again(
    keyed_shop: Shop, clock: FrozenClock
) -> None:
    keyed_shop.receive_stock(TEA, 5, idempotency_key="delivery-1")
    clock.now += timedelta(minutes=59)
    keyed_shop.receive_stock(TEA, 5, idempotency_key="delivery-1")
    assert keyed_shop.get_stock(TEA).on_hand == 15

    clock.now += timedelta(minutes=2)
    keyed_shop.receive_stock(TEA, 7, idempotency_key="delivery-1")
    keyed_shop.receive_stock(TEA, 7, idempotency_key="delivery-1")

    assert keyed_shop.get_stock(TEA).on_hand == 22
    receipt: object = keyed_shop.inventory.repository.get(
        receipt_id("Inventory", "delivery-1")
    )
    assert isinstance(receipt, CommandReceipt)
    assert receipt.version == 2  # issued, then renewed
    assert receipt.expires_at == clock.now + timedelta(hours=1)


def test_the_time_a_key_holds_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVENTSHOP_IDEMPOTENCY_TTL_SECONDS", "90")

    settings = Settings.from_url("sqlite:///unused")

    assert settings.idempotency_ttl == timedelta(seconds=90)
    assert settings.child_environment()["EVENTSHOP_IDEMPOTENCY_TTL_SECONDS"] == "90.0"


# -- racing tries ----------------------------------------------------------------


RACERS = 2
KEYS = 15


def test_two_processes_racing_with_one_key_apply_the_command_once(
    settings: Settings,
) -> None:
    with Shop(settings=settings, subscribers="workers") as shop:
        shop.register_product(TEA, TEA_NAME, "6.20")
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(RACERS)
    reports: multiprocessing.Queue[RaceReport] = context.Queue()
    racers = [
        context.Process(
            target=race_with_keys,
            args=(
                RaceTask(settings.database_url(), TEA, "alice", racer, KEYS),
                start,
                reports,
            ),
        )
        for racer in range(RACERS)
    ]
    for racer in racers:
        racer.start()
    try:
        collected = [reports.get(timeout=120) for _ in racers]
    finally:
        for racer in racers:
            racer.join(timeout=30)
            if racer.is_alive():
                racer.kill()

    assert [report.crash for report in collected] == [None] * RACERS
    first, second = (report.carts for report in collected)
    assert first == second  # every racer was given the one cart each key opened
    assert len(set(first)) == KEYS
    assert collected[0].orders == collected[1].orders
    with Shop(settings=settings, subscribers="workers") as shop:
        assert shop.get_stock(TEA).on_hand == KEYS * STOCK_PER_DELIVERY
        assert shop.get_stock(TEA).version == 1 + KEYS
        for cart_id in first:
            cart = shop.get_cart(cart_id)
            assert cart.status == "checked_out"
            assert [line.quantity for line in cart.lines] == [1]
            assert cart.version == 3  # opened, one unit added, checked out


# -- receipts in the audit -------------------------------------------------------


def test_a_receipt_is_an_audited_event_of_the_service_the_command_wrote_to(
    settings: Settings,
) -> None:
    with Shop(settings=settings, subscribers="threads") as shop:
        shop.register_product(TEA, TEA_NAME, "6.20")
        shop.receive_stock(TEA, 5, idempotency_key="delivery-1", actor="clerk")
        shop.wait_until_processed()

        page = shop.audit.events(event_types=["CommandReceipt.Issued"])

    [issued] = page.events
    assert issued.service == "Inventory"
    assert issued.actor == "clerk"
