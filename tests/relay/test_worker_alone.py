"""A worker of broker-fed subscribers needs no database of the services it
follows: it decodes their events with a stand-in of each service held in
memory, so it runs on while such a database is away. Against a NATS server
of the test's own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from application import Shop
from application.bootstrap import Stores, open_worker_stores
from application.config import Settings
from application.relay.jetstream import JetStream
from application.relay.relay import EventRelay
from application.shop_queries import ShopQueries
from application.subscribers.hosting import (
    run_worker,
    worker_databases,
    worker_groups,
)
from bench.ports import free_port
from domain.errors import DatabaseConnectionError
from tests.projections.runner_testing import eventually
from tests.support.private_nats import PrivateNats

TEA = "TEA-1"
EVERY_SERVICE = ("Carts", "Orders", "Inventory")


@pytest.mark.parametrize(
    ("broker_fed", "expected"),
    [
        # process managers: their own services; read models and the ticker:
        # Orders (the ticker cancels unpaid orders); audit: every log it chains
        (
            "all",
            [{"Orders", "Inventory"}, {"Orders"}, {"Carts", "Orders", "Inventory"}],
        ),
        # read directly, each worker needs every log it follows as well
        ("", [set(EVERY_SERVICE)] * 3),
    ],
)
def test_a_worker_opens_only_the_service_databases_it_needs(
    broker_fed: str, expected: list[set[str]]
) -> None:
    settings = Settings.from_url(
        "sqlite:///tmp/unused",
        nats_url="nats://127.0.0.1:4222",
        broker_fed=[broker_fed] if broker_fed else [],
    )

    assert [worker_databases(settings, group) for group in worker_groups()] == expected


@pytest.fixture
def carts_relayed(tmp_path: Path, nats_server: PrivateNats) -> list[str]:
    """Two carts with a line each in a SQLite shop at ``tmp_path``, the first
    checked out, relayed to the test's broker; returns their ids."""
    with Shop(data_dir=tmp_path, subscribers="workers") as shop:
        shop.register_product(TEA, "Tea", "3.50")
        carts = [str(shop.open_cart(f"customer-{n}")) for n in range(2)]
        for cart in carts:
            shop.add_to_cart(cart, TEA, 2)
        shop.checkout(carts[0])
        broker = JetStream(nats_server.url, timeout=2.0)
        try:
            EventRelay(shop.carts, broker).relay_once()
        finally:
            broker.close()
    return carts


def carts_away(tmp_path: Path, nats_url: str, broker_fed: str) -> Settings:
    """The shop at ``tmp_path`` as a worker sees it whose Carts database does
    not answer (nothing listens there), ``broker_fed`` fed by the broker."""
    away = f"postgresql://postgres@127.0.0.1:{free_port()}/carts"
    return Settings.from_url(
        data_dir=tmp_path,
        part_urls={"Carts": away},
        nats_url=nats_url,
        broker_fed=[broker_fed],
    )


@contextmanager
def running_worker(settings: Settings, subscriber: str) -> Iterator[Stores]:
    """A worker of ``subscriber`` in a thread, as ``eventshop worker`` runs it;
    yields what it runs against, and stops it afterwards."""
    stopping = threading.Event()
    with open_worker_stores(settings, [subscriber]) as stores:
        worker = threading.Thread(
            target=run_worker,
            args=(settings, [subscriber], stores.services, stores.views, stopping),
        )
        worker.start()
        try:
            yield stores
        finally:
            stopping.set()
            worker.join(30)
    assert not worker.is_alive()


def test_a_broker_fed_read_model_runs_while_its_services_database_is_away(
    tmp_path: Path, nats_server: PrivateNats, carts_relayed: list[str]
) -> None:
    settings = carts_away(tmp_path, nats_server.url, "carts")
    # read directly, it could not start at all
    with pytest.raises(DatabaseConnectionError):
        open_worker_stores(replace(settings, broker_fed=frozenset()), ["carts"])

    # fed by the broker, it folds the carts into its view from the stream
    with running_worker(settings, "carts") as stores:
        queries = ShopQueries(stores.views)

        def every_cart_shown() -> bool:
            shown = [queries.cart(cart) for cart in carts_relayed]
            return all(cart is not None and cart.lines for cart in shown)

        eventually(every_cart_shown, 30, "the carts view to show both carts")


def test_a_broker_fed_process_manager_runs_while_the_followed_database_is_away(
    tmp_path: Path, nats_server: PrivateNats, carts_relayed: list[str]
) -> None:
    # the checkout process manager records in Orders and follows Carts
    settings = carts_away(tmp_path, nats_server.url, "checkout")
    with running_worker(settings, "checkout") as stores:
        orders = stores.services["Orders"]
        eventually(lambda: orders.log_head() > 0, 30, "the order to be placed")
        [placed] = orders.recorder.select_notifications(0, 10)
    assert placed.topic.endswith("Order.Placed")
