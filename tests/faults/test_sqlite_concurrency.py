"""Several processes on one SQLite folder, as on PostgreSQL: two shops hosting
every subscriber run commands at once and every subscriber stays alive; eight
processes starting at once on a fresh folder all create the same schema."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Literal

import pytest

from application import Shop
from application.demo.invariants import check_invariants
from application.demo.workload import await_decision
from domain.values import order_id_for_cart

STOCK = {"TEA-1": 400, "TEA-2": 250, "MUG-1": 120}
Hosting = Literal["embedded", "threads"]


def stock_up(shop: Shop) -> None:
    for sku, quantity in STOCK.items():
        shop.register_product(sku, f"product {sku}", "3.00")
        shop.receive_stock(sku, quantity)


def customer(shop: Shop, number: int, until: float) -> list[str]:
    """Checks out, then pays, cancels or leaves orders, until ``until``;
    returns the carts checked out."""
    rng = random.Random(number)
    carts: list[str] = []
    visit = 0
    while time.monotonic() < until:
        visit += 1
        cart_id = shop.open_cart(f"customer-{number}-{visit}")
        for sku in rng.sample(sorted(STOCK), k=rng.randint(1, 3)):
            shop.add_to_cart(cart_id, sku, rng.randint(1, 3))
        shop.checkout(cart_id)
        carts.append(str(cart_id))
        order_id = order_id_for_cart(cart_id)
        if await_decision(shop, order_id) != "confirmed":
            continue
        roll = rng.random()
        if roll < 0.4:
            shop.pay_order(order_id)
            shop.ship_order(order_id)
        elif roll < 0.6:
            shop.cancel_order(order_id, "changed their mind")
    return carts


def failed_reports(shop: Shop) -> dict[str, list[str]]:
    """The subscribers some instance of which reported that it stopped."""
    return {
        name: [report.error or report.state for report in reports]
        for name, reports in shop.views.reports.all().items()
        if any(report.state in ("failed", "halted") for report in reports)
    }


@pytest.mark.slow
@pytest.mark.parametrize("hosting", ["embedded", "threads"])
def test_two_shops_on_one_folder_keep_every_subscriber_alive(
    tmp_path: Path, hosting: Hosting, request: pytest.FixtureRequest
) -> None:
    seconds = 60.0 if request.config.getoption("--long") else 6.0
    folder = tmp_path / "data"
    with ExitStack() as opened:
        # given two shops opened at once on a fresh SQLite folder, each
        # hosting every subscriber
        with ThreadPoolExecutor(max_workers=2) as pool:
            opening = [
                pool.submit(Shop, data_dir=folder, subscribers=hosting)
                for _ in range(2)
            ]
            shops = [opened.enter_context(future.result()) for future in opening]
        stock_up(shops[0])

        # when customers use both at once for a while
        until = time.monotonic() + seconds
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [
                pool.submit(customer, shops[number % 2], number, until)
                for number in range(4)
            ]
            carts = [cart for future in futures for cart in future.result()]

        # then every subscriber of both shops is alive and caught up
        for shop in shops:
            # Raises if a subscriber hosted by this shop failed or halted.
            shop.wait_until_processed(timeout=120)
            assert failed_reports(shop) == {}
            if hosting == "threads":
                assert all(runner.is_alive for runner in shop.subscribers.runners)
                assert all(keeper.is_alive for keeper in shop.subscribers.chain_keepers)
        # and the views and the saga add up
        assert len(carts) > 20
        checks = check_invariants(shops[1])
        assert all(check.ok for check in checks), [check.detail for check in checks]


START_AND_WRITE = """
import sys, time
from pathlib import Path
from application import Shop

folder, go, hosting = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
print("ready", flush=True)
deadline = time.monotonic() + 60
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("the go file never appeared")
    time.sleep(0.001)
with Shop(data_dir=folder, subscribers=hosting) as shop:
    cart_id = shop.open_cart("customer")
    shop.register_product(f"SKU-{cart_id.hex[:8].upper()}", "a product", "1.00")
print(cart_id, flush=True)
"""


@pytest.fixture
def starters() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
@pytest.mark.parametrize(
    "hosting", ["workers", pytest.param("embedded", marks=pytest.mark.long)]
)
def test_eight_processes_starting_at_once_on_a_fresh_folder_all_succeed(
    tmp_path: Path,
    hosting: str,
    starters: list[subprocess.Popen[str]],
    request: pytest.FixtureRequest,
) -> None:
    rounds = 10 if request.config.getoption("--long") else 2
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for round_number in range(rounds):
        folder = tmp_path / f"data-{round_number}"
        go = tmp_path / f"go-{round_number}"
        # given eight processes, each waiting for one file to appear
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", START_AND_WRITE, str(folder), str(go), hosting],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        starters.extend(processes)
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n"

        # when it appears, so that all of them open a shop on the fresh folder
        go.touch()

        # then every one of them creates (or finds) the schema and writes
        outcomes = [process.communicate(timeout=120) for process in processes]
        failures = [
            stderr
            for process, (_, stderr) in zip(processes, outcomes, strict=True)
            if process.returncode != 0
        ]
        assert failures == [], f"round {round_number}: {failures[0]}"
        carts = {stdout.strip() for stdout, _ in outcomes}
        assert len(carts) == 8
        with Shop(data_dir=folder, subscribers="workers") as shop:
            for cart_id in carts:
                assert shop.get_cart(cart_id).customer_id == "customer"
