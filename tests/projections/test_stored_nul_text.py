"""Read models take text with NUL that the log already holds.

The shop refuses control characters in new text, but events stored before it
did (or written with the library directly) stay in the append-only log, and
PostgreSQL cannot hold NUL in text at all: the views store U+FFFD in its place,
so those events neither park as dead letters nor stop a rebuild.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from application import Settings, Shop
from application.cli import main
from application.services.audit_metadata import caused_by
from domain.cart import Cart
from domain.inventory import InventoryItem
from domain.order import Order
from tests.application.shop_testing import TEA
from tests.conftest import postgres_url

NAME = "Sencha\x00tea"
CUSTOMER = "customer\x00one"
ACTOR = "clerk\x00"
REASON = "changed\x00mind"


def stored_as(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def storage_options(settings: Settings) -> list[str]:
    if settings.postgres is None:
        return ["--data-dir", str(settings.data_dir)]
    return ["--database-url", postgres_url(settings.postgres.schema)]


def test_views_store_nul_as_a_replacement_character_and_rebuild_the_same(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with Shop(settings=settings, subscribers="threads") as shop:
        # given events with NUL in their text, stored past the shop's checks
        tea = InventoryItem(sku=TEA, name=NAME, price=Decimal("6.20"))
        shop.inventory.save(tea)
        shop.receive_stock(TEA, 10)
        cart = Cart(customer_id=CUSTOMER)
        shop.carts.save(cart)
        shop.add_to_cart(cart.id, TEA, 2)
        order_id = shop.checkout(cart.id)
        shop.wait_until_processed()
        order: Order = shop.orders.repository.get(order_id)
        [opened] = shop.carts.events.get(cart.id, lte=1)
        with caused_by(opened, ACTOR):
            order._cancel(reason=REASON)
            shop.orders.save(order)

        # when every subscriber has handled them
        shop.wait_until_processed()

        # then nothing was parked, and the views hold the text with U+FFFD
        assert shop.dead_letters.list() == ()
        summary = shop.queries.order(order_id)
        assert summary is not None
        assert (summary.customer_id, summary.status) == (
            stored_as(CUSTOMER),
            "cancelled",
        )
        history = shop.queries.customer_history(stored_as(CUSTOMER))
        assert [placed.order_id for placed in history.orders] == [order_id]
        assert shop.queries.cart(cart.id) is not None
        stock = shop.queries.stock_level(TEA)
        assert stock is not None
        assert stock.name == stored_as(NAME)
        [cancelled] = [
            event
            for event in shop.audit.history(order_id)
            if event.event_type.endswith("Cancelled")
        ]
        assert cancelled.actor == stored_as(ACTOR)
        assert cancelled.payload["reason"] == REASON

        # and every view equals its rebuild from the log
        reports = shop.rebuild("all", mode="verify")
        assert [report.projection for report in reports if not report.agrees] == []

    # as `eventshop rebuild --all --verify` says too
    assert main(["rebuild", "--all", "--verify", *storage_options(settings)]) == 0
    assert "differences" not in capsys.readouterr().out
