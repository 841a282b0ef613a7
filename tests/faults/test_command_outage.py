"""Commands while the database goes away: each returns, or fails within its
time with an error that says whether it may have been applied; a write whose
reply was lost is recognised as the command's own, never written twice.

On a private cluster (tests/support/private_postgres.py): these tests stop it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import OperationalError

from application import Settings, Shop
from application.services.base import ShopService
from domain.errors import (
    CommandOutcomeUnknownError,
    DatabaseUnavailableError,
    StorageUnavailableError,
)
from tests.support.private_postgres import PrivateCluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

COMMAND_TIMEOUT = 2.0
# Time a failing command may take beyond its budget: one last connect attempt
# (at least 2 s, libpq's least connect timeout) on a loaded machine.
SLACK = 3.0


@pytest.fixture
def shop(cluster: PrivateCluster) -> Iterator[Shop]:
    cluster.ensure_up()
    settings = replace(Settings.from_url(cluster.url), connect_timeout_seconds=2.0)
    with Shop(
        settings=settings,
        subscribers="workers",
        command_timeout_seconds=COMMAND_TIMEOUT,
    ) as opened:
        yield opened
    cluster.ensure_up()


def stored_versions(
    cluster: PrivateCluster, table: str, aggregate_id: UUID
) -> list[int]:
    with psycopg.connect(cluster.url) as conn:
        rows = conn.execute(
            f"SELECT originator_version FROM {table} WHERE originator_id = %s "
            "ORDER BY originator_version",
            (aggregate_id,),
        ).fetchall()
    return [version for (version,) in rows]


@contextmanager
def reply_lost(
    service: ShopService[Any, Any],
    monkeypatch: pytest.MonkeyPatch,
    *,
    after_commit: bool = True,
    then: Callable[[], None] = lambda: None,
) -> Iterator[None]:
    """The next write of ``service`` reaches the database and is committed
    (``after_commit``) or is cut before its commit, and then its connection
    dies before the reply: the client sees what it sees when the server goes
    away at that moment. ``then`` runs at that moment (to stop the server)."""
    datastore = service.recorder.datastore  # type: ignore[attr-defined]
    recorder = service.recorder
    original_connection = datastore.get_connection
    original_fetch = recorder._fetch_ids_after_insert_events  # type: ignore[attr-defined]
    state = {"armed": True, "writing": False}

    def fetch(*args: Any, **kwargs: Any) -> Any:
        state["writing"] = True
        if state["armed"] and not after_commit:
            state["armed"] = False
            then()
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return original_fetch(*args, **kwargs)

    @contextmanager
    def connection() -> Iterator[Any]:
        state["writing"] = False
        with original_connection() as conn:
            yield conn
        if state["writing"] and state["armed"]:
            state["armed"] = False
            then()
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(recorder, "_fetch_ids_after_insert_events", fetch)
    monkeypatch.setattr(datastore, "get_connection", connection)
    yield
    assert not state["armed"], "the command wrote nothing"


def test_open_cart_whose_reply_was_lost_returns_the_cart_it_stored(
    shop: Shop, cluster: PrivateCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    with reply_lost(shop.carts, monkeypatch):
        cart_id = shop.open_cart("ann")

    assert shop.get_cart(cart_id).customer_id == "ann"
    assert stored_versions(cluster, "carts_events", cart_id) == [1]


def test_checkout_whose_reply_was_lost_succeeds_once(
    shop: Shop, cluster: PrivateCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = registered_sku(shop)
    cart_id = shop.open_cart("ann")
    shop.add_to_cart(cart_id, sku, 2)

    with reply_lost(shop.carts, monkeypatch):
        order_id = shop.checkout(cart_id)

    cart = shop.get_cart(cart_id)
    assert (cart.status, cart.order_id) == ("checked_out", order_id)
    assert stored_versions(cluster, "carts_events", cart_id) == [1, 2, 3]


def test_write_cut_before_its_commit_is_sent_again(
    shop: Shop, cluster: PrivateCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = registered_sku(shop)
    cart_id = shop.open_cart("ann")

    with reply_lost(shop.carts, monkeypatch, after_commit=False):
        shop.add_to_cart(cart_id, sku, 2)

    assert shop.get_cart(cart_id).lines[0].quantity == 2
    assert stored_versions(cluster, "carts_events", cart_id) == [1, 2]


def test_commands_fail_within_their_time_while_the_database_is_down(
    shop: Shop, cluster: PrivateCluster
) -> None:
    sku = registered_sku(shop)
    cart_id = shop.open_cart("ann")
    cluster.stop()

    commands: list[Callable[[], object]] = [
        lambda: shop.open_cart("bob"),
        lambda: shop.add_to_cart(cart_id, sku, 1),
        lambda: shop.get_cart(cart_id),
        lambda: shop.receive_stock(sku, 5),
    ]
    for command in commands:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError) as refused:
            command()
        took = time.monotonic() - started
        assert COMMAND_TIMEOUT - 0.5 <= took <= COMMAND_TIMEOUT + SLACK
        assert refused.value.may_have_been_applied is False
        assert f"127.0.0.1:{cluster.port}" in str(refused.value)

    cluster.start()
    cluster.wait_up()
    assert shop.get_cart(cart_id).lines == ()
    assert stored_versions(cluster, "carts_events", cart_id) == [1]


def test_a_command_goes_on_as_soon_as_the_database_is_back(
    shop: Shop, cluster: PrivateCluster
) -> None:
    cart_id = shop.open_cart("ann")
    cluster.stop()
    restarted = threading.Timer(1.0, cluster.start)
    shop.settings = replace(shop.settings, command_timeout_seconds=20.0)
    restarted.start()
    try:
        started = time.monotonic()
        shop.abandon_cart(cart_id)
        took = time.monotonic() - started
    finally:
        restarted.join()
    assert shop.get_cart(cart_id).status == "abandoned"
    # Not the pool's reconnect backoff, nor the whole budget.
    assert took < 10.0


def test_outcome_unknown_when_the_database_stays_away_after_the_write(
    shop: Shop, cluster: PrivateCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = registered_sku(shop)
    cart_id = shop.open_cart("ann")
    shop.add_to_cart(cart_id, sku, 1)

    started = time.monotonic()
    with (
        reply_lost(shop.carts, monkeypatch, then=cluster.stop),
        pytest.raises(CommandOutcomeUnknownError) as unknown,
    ):
        shop.checkout(cart_id)
    assert time.monotonic() - started <= COMMAND_TIMEOUT + SLACK
    assert unknown.value.may_have_been_applied is True
    assert unknown.value.aggregate_ids == (cart_id,)
    with pytest.raises(StorageUnavailableError):
        shop.was_applied(unknown.value)

    cluster.start()
    cluster.wait_up()
    assert shop.was_applied(unknown.value) is True
    assert shop.get_cart(cart_id).status == "checked_out"
    assert stored_versions(cluster, "carts_events", cart_id) == [1, 2, 3]


def test_outcome_unknown_of_a_write_cut_before_its_commit_is_not_applied(
    shop: Shop, cluster: PrivateCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = registered_sku(shop)
    cart_id = shop.open_cart("ann")
    shop.add_to_cart(cart_id, sku, 1)

    with (
        reply_lost(shop.carts, monkeypatch, after_commit=False, then=cluster.stop),
        pytest.raises(CommandOutcomeUnknownError) as unknown,
    ):
        shop.checkout(cart_id)

    cluster.start()
    cluster.wait_up()
    assert shop.was_applied(unknown.value) is False
    # So running it again is safe, and it is applied once.
    shop.checkout(cart_id)
    assert stored_versions(cluster, "carts_events", cart_id) == [1, 2, 3]


def registered_sku(shop: Shop) -> str:
    sku = f"TEA-{time.monotonic_ns()}"
    shop.register_product(sku, "Tea", "4.50")
    shop.receive_stock(sku, 50)
    return sku


def shop_through_an_outage(
    shop: Shop, cluster: PrivateCluster, outage_seconds: float, clients: int = 4
) -> None:
    """Customers keep shopping while the database is stopped for
    ``outage_seconds``: every command returns or fails within its time with a
    typed error, and afterwards every checkout that returned is stored exactly
    once, and every unknown outcome is told exactly by ``was_applied``."""
    sku = registered_sku(shop)
    shop.receive_stock(sku, 10_000)
    done = threading.Event()
    checked_out: list[UUID] = []
    unknown: list[CommandOutcomeUnknownError] = []
    slowest = [0.0]
    unexpected: list[BaseException] = []

    def timed(command: Callable[..., Any], *args: Any) -> Any:
        started = time.monotonic()
        try:
            return command(*args)
        finally:
            slowest[0] = max(slowest[0], time.monotonic() - started)

    def customer(number: int) -> None:
        while not done.is_set():
            try:
                cart_id = timed(shop.open_cart, f"customer-{number}")
                timed(shop.add_to_cart, cart_id, sku, 1)
                timed(shop.checkout, cart_id)
                checked_out.append(cart_id)
            except CommandOutcomeUnknownError as error:
                unknown.append(error)
            except DatabaseUnavailableError:
                time.sleep(0.05)
            except BaseException as error:  # anything else: reported below
                unexpected.append(error)
                return

    threads = [
        threading.Thread(target=customer, args=(number,)) for number in range(clients)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        cluster.stop()
        time.sleep(outage_seconds)
        cluster.start()
        time.sleep(2.0)
    finally:
        done.set()
        for thread in threads:
            thread.join()

    assert unexpected == []
    assert slowest[0] <= COMMAND_TIMEOUT + SLACK
    assert checked_out, "nobody got through before or after the outage"
    for cart_id in checked_out:
        assert stored_versions(cluster, "carts_events", cart_id) == [1, 2, 3]
    for error in unknown:
        (cart_id,) = error.aggregate_ids
        versions = stored_versions(cluster, "carts_events", cart_id)
        written = [version for _, version, _, _ in error.written]
        assert shop.was_applied(error) == (versions[-len(written) :] == written)


def test_customers_keep_shopping_through_a_short_outage(
    shop: Shop, cluster: PrivateCluster
) -> None:
    shop_through_an_outage(shop, cluster, outage_seconds=4.0)


@pytest.mark.long
def test_customers_keep_shopping_through_a_20_second_outage(
    shop: Shop, cluster: PrivateCluster
) -> None:
    shop_through_an_outage(shop, cluster, outage_seconds=20.0, clients=8)
