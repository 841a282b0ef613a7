"""Many customers checking out at once against limited stock, and two shops
running the same subscribers at once: stock is conserved and every checkout is
resolved exactly once."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

from application import Settings, Shop
from application.demo.invariants import check_invariants
from domain.values import order_id_for_cart

STOCK = {"TEA-1": 12, "TEA-2": 7, "MUG-1": 4}
CUSTOMERS = 30


def stock_up(shop: Shop) -> None:
    for sku, quantity in STOCK.items():
        shop.register_product(sku, f"product {sku}", "3.00")
        shop.receive_stock(sku, quantity)


def shop_and_check_out(shop: Shop, number: int) -> UUID:
    rng = random.Random(number)
    cart_id = shop.open_cart(f"customer-{number}")
    for sku in rng.sample(sorted(STOCK), k=rng.randint(1, 3)):
        shop.add_to_cart(cart_id, sku, rng.randint(1, 3))
    shop.checkout(cart_id)
    return cart_id


def test_concurrent_checkouts_against_limited_stock_keep_every_invariant(
    settings: Settings,
) -> None:
    with Shop(settings=settings) as shop:
        stock_up(shop)

        # when 30 customers check out from 4 threads while the saga runs
        with ThreadPoolExecutor(max_workers=4) as pool:
            carts = list(
                pool.map(lambda n: shop_and_check_out(shop, n), range(CUSTOMERS))
            )
        shop.wait_until_processed(timeout=60)

        # then some orders were rejected, none oversold, each resolved once
        statuses = [shop.get_order(order_id_for_cart(c)).status for c in carts]
        assert "rejected" in statuses
        assert "confirmed" in statuses
        for sku, received in STOCK.items():
            stock = shop.get_stock(sku)
            assert stock.reserved <= received
        checks = check_invariants(shop)
        assert [(check.name, check.ok) for check in checks] == [
            (check.name, True) for check in checks
        ], [check.detail for check in checks]


def test_two_shops_running_the_same_subscribers_apply_each_event_once(
    settings: Settings,
) -> None:
    # given two shops on one store, each hosting every subscriber
    with Shop(settings=settings) as first, Shop(settings=settings) as second:
        stock_up(first)

        # when customers check out through both
        with ThreadPoolExecutor(max_workers=4) as pool:
            carts = list(
                pool.map(
                    lambda n: shop_and_check_out(first if n % 2 else second, n),
                    range(20),
                )
            )
        first.wait_until_processed(timeout=60)
        second.wait_until_processed(timeout=60)

        # then each checkout became one order, and no reaction or view row was
        # applied twice
        orders = {first.get_order(order_id_for_cart(cart)).order_id for cart in carts}
        assert len(orders) == 20
        checks = check_invariants(first)
        assert all(check.ok for check in checks), [check.detail for check in checks]
