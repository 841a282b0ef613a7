"""The demo workload: its checks hold over the whole store (run it as often as
you like in one folder), its customers pay in time however many there are, and
a workload it cannot run is refused before anything is written."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from application import Settings, Shop
from application.cli import main
from application.demo.workload import DEMO_PAYMENT_TIMEOUT, DemoReport, run_demo
from domain.errors import InvalidInputError
from domain.order import PAYMENT_NOT_RECEIVED
from domain.values import order_id_for_cart

# Short enough that a run of 300 customers on a fast machine lasts several
# payment timeouts (it took 5.8 s in CI), long enough for a customer to pay
# the moment their order is confirmed.
SHORT_PAYMENT_TIMEOUT = timedelta(seconds=1.5)


@pytest.fixture
def demo_shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    timeout = getattr(request, "param", DEMO_PAYMENT_TIMEOUT)
    settings = replace(
        Settings.from_url(data_dir=tmp_path / "data"), payment_timeout=timeout
    )
    with Shop(settings=settings) as shop:
        yield shop


def failed(report: DemoReport) -> list[str]:
    return [
        *report.errors,
        *(
            f"{check.name}: {check.detail}"
            for check in report.invariants
            if not check.ok
        ),
    ]


@pytest.mark.slow
def test_the_demo_run_twice_in_one_folder_passes_both_times(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    demo = ["demo", "--customers", "40", "--seed", "7", "--data-dir", data_dir]

    # when the demo runs, then runs again on the store the first run left
    first = main(demo)
    second = main(demo)

    # then its checks, over everything stored, pass both times
    assert (first, second) == (0, 0)


@pytest.mark.slow
def test_the_checks_cover_what_earlier_runs_stored(demo_shop: Shop) -> None:
    # given a run that left paid (still reserved) orders in the store
    earlier = run_demo(demo_shop, customers=40, seed=3, verify_views=False)
    assert failed(earlier) == []

    # when another run checks the store
    later = run_demo(demo_shop, customers=10, seed=4, verify_views=False)

    # then it passes, counting every checkout ever made, not only its own
    assert failed(later) == []
    resolved = next(
        check for check in later.invariants if check.name.startswith("every checkout")
    )
    total = len(earlier.checked_out) + len(later.checked_out)
    assert resolved.detail == f"{total} checkouts"


@pytest.mark.slow
@pytest.mark.parametrize(
    # Before customers paid as soon as their order was confirmed, 1,000 of them
    # took the demo 7.6 s and expired 24 of its 48 confirmed orders.
    "customers",
    [300, pytest.param(1000, marks=pytest.mark.long)],
)
@pytest.mark.parametrize("demo_shop", [SHORT_PAYMENT_TIMEOUT], indirect=True)
def test_a_large_run_only_expires_the_orders_left_unpaid(
    demo_shop: Shop, customers: int
) -> None:
    # when many customers shop, so the run lasts far longer than the
    # payment timeout
    report = run_demo(
        demo_shop, customers=customers, threads=4, seed=11, verify_views=False
    )
    assert failed(report) == []
    timeout = demo_shop.settings.payment_timeout.total_seconds()
    assert report.shopping_seconds > 2 * timeout, "the run must outlast the deadlines"

    # then the orders that expired are the ones their customers left unpaid
    expired = {
        order_id_for_cart(cart_id)
        for cart_id in report.checked_out
        if (
            demo_shop.get_order(order_id_for_cart(cart_id)).cancellation_reason or ""
        ).startswith(PAYMENT_NOT_RECEIVED)
    }
    assert report.left_unpaid
    assert expired == set(report.left_unpaid)
    assert report.orders_by_outcome["shipped"] > report.expired


@pytest.mark.parametrize(
    ("customers", "threads", "field"),
    [
        (-5, 4, "customers"),
        (0, 4, "customers"),
        (10, 0, "threads"),
        (10, 65, "threads"),
    ],
)
def test_a_workload_the_demo_cannot_run_writes_nothing(
    demo_shop: Shop, customers: int, threads: int, field: str
) -> None:
    heads = demo_shop.log_heads()
    with pytest.raises(InvalidInputError) as refused:
        run_demo(demo_shop, customers=customers, threads=threads)
    assert refused.value.field == field
    assert demo_shop.log_heads() == heads
