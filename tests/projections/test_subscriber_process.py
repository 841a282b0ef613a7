"""An embedded shop hosts its subscribers in a helper process it starts and
stops: the saga and the views work as before, ``wait_until_processed`` waits
for them and reports one that halted, and the helper ends with the shop,
however the shop's process ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from application.config import Settings
from application.shop import Shop
from application.subscribers.hosting import SubscriberFailedError
from domain.order import Order
from tests.projections.runner_testing import eventually, insert_undecodable

OPEN_AND_REPORT = """
import sys, time
from application.shop import Shop
shop = Shop(sys.argv[1])
print(shop.subscribers.helper.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child that exited but was not waited for is a zombie: gone all the same.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_saga_and_the_views_run_in_a_process_of_their_own(
    settings: Settings,
) -> None:
    # given an embedded shop
    with Shop(settings=settings) as shop:
        assert shop.subscribers.helper is not None
        helper = shop.subscribers.helper.pid
        assert helper is not None
        assert helper != os.getpid()

        # when a customer checks out and the caller waits for the subscribers
        shop.register_product("HELPED-1", "helped", "2.00")
        shop.receive_stock("HELPED-1", 5)
        cart_id = shop.open_cart("helped customer")
        shop.add_to_cart(cart_id, "HELPED-1", 2)
        order_id = shop.checkout(cart_id)
        shop.wait_until_processed(timeout=60)

        # then the order was confirmed and the views show it, all done by
        # the helper process, none of it by threads of this one
        summary = shop.queries.order(order_id)
        assert summary is not None
        assert summary.status == "confirmed"
        level = shop.queries.stock_level("HELPED-1")
        assert level is not None
        assert level.reserved == 2
        assert shop.subscribers.runners == []
        reporters = {
            report.pid
            for reports in shop.views.reports.all().values()
            for report in reports
            if report.state == "running"
        }
        assert reporters == {helper}
    # and closing the shop ended the helper
    assert not alive(helper)


def test_wait_until_started_returns_once_the_helper_hosts_every_subscriber(
    settings: Settings,
) -> None:
    # given a shop whose helper has just been started, and a second shop on
    # the same store (whose helper can only stand by)
    with Shop(settings=settings) as first, Shop(settings=settings) as second:
        helpers = {first.subscribers.helper.pid, second.subscribers.helper.pid}  # type: ignore[union-attr]

        # when each waits until its subscribers have started
        first.wait_until_started(timeout=60)
        second.wait_until_started(timeout=60)

        # then every subscriber has reported in from both helpers: one leads,
        # the other stands by
        names = {subscriber.name for subscriber in first.subscribers.subscribers}
        reports = first.views.reports.all()
        assert set(reports) >= names
        for name in names:
            assert {report.pid for report in reports[name]} >= helpers
            assert "running" in {report.state for report in reports[name]}


def test_wait_until_started_returns_at_once_for_a_shop_that_hosts_none(
    settings: Settings,
) -> None:
    with Shop(settings=settings, subscribers="workers") as shop:
        shop.wait_until_started(timeout=0)
        assert shop.views.reports.all() == {}


def test_a_subscriber_that_halts_in_the_helper_fails_wait_until_processed(
    settings: Settings,
) -> None:
    # given an embedded shop, and a placed order that cannot be decoded (the
    # allocation process manager stops on a failing event)
    with Shop(settings=settings) as shop:
        insert_undecodable(shop.orders, Order.Placed)

        # when the caller waits, then it learns that allocation halted
        with pytest.raises(SubscriberFailedError, match="allocation") as failed:
            shop.wait_until_processed(timeout=60)
        assert "halted at" in str(failed.value)


def test_the_helper_ends_when_the_shop_process_is_killed(settings: Settings) -> None:
    # given a process with an embedded shop, and its helper
    shop_process = subprocess.Popen(
        [sys.executable, "-c", OPEN_AND_REPORT, settings.database_url()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert shop_process.stdout is not None
        helper = int(shop_process.stdout.readline())
        assert alive(helper)

        # when the shop's process is killed, with no chance to close the shop
        shop_process.send_signal(signal.SIGKILL)
        shop_process.wait()

        # then the helper notices and ends too
        eventually(lambda: not alive(helper), 60, "the helper to end")
    finally:
        shop_process.kill()
        shop_process.wait()
