"""Workload 3: the saga on a backlog.

``clients`` processes (``Shop(subscribers="workers")`` each) write
``saga_checkouts`` checkouts while nothing reacts: the writing rate. Then the
backlog is settled (every order confirmed or rejected, every subscriber caught
up, as ``wait_until_processed`` says), once by an embedded ``Shop`` and, on a
second store written the same way, by ``eventshop worker`` processes (grouped
as the demo deploys them): the settle rate, compared with the writing rate.

The settle time is counted from the first reaction (the first order placed)
to the end, so that neither the shop's set-up nor the workers' start-up
(imports, connections) counts; the time from the start is kept in the
details. Every order is then checked in the order view.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import ExitStack

from application.shop import Shop
from bench.processes import Watch, run_clients, workers_running
from bench.results import Result, Target, WorkloadError, rate
from bench.shopping import (
    SETTLED_STATUSES,
    ClientReport,
    span,
    stock_up,
    write_checkouts,
)
from bench.workloads.common import WORKER_GROUPS, Bench, wait_settled

WORKLOAD = "saga backlog"
AS_FAST_AS_WRITTEN = Target(min_ratio=1.0)


def write_backlog(
    bench: Bench, url: str, checkouts: int, hosting: str
) -> tuple[list[str], float]:
    """Returns the orders to be and the writing rate in checkouts/s."""
    clients = bench.sizes.clients
    with Shop(database_url=url, subscribers="workers") as shop:
        stock_up(shop, checkouts)
    shares = [checkouts // clients] * clients
    shares[0] += checkouts - sum(shares)
    reports: list[ClientReport] = run_clients(
        write_checkouts,
        [(url, client, share, 0.0) for client, share in enumerate(shares)],
        timeout=bench.sizes.timeout,
    )
    orders = [order for report in reports for order in report.order_ids]
    commands = sum(report.commands for report in reports)
    seconds = span(reports)
    bench.fact(
        WORKLOAD,
        **{
            f"writing the backlog settled {hosting}": {
                "checkouts": len(orders),
                "commands": commands,
                "seconds": seconds,
                "commands_per_second": rate(commands, seconds),
            }
        },
    )
    return orders, rate(len(orders), seconds)


def check_outcomes(shop: Shop, orders: list[str]) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    for order in orders:
        view = shop.queries.order(order)
        status = "missing" if view is None else view.status
        outcomes[status] += 1
    unsettled = {
        status: count
        for status, count in outcomes.items()
        if status not in SETTLED_STATUSES
    }
    if unsettled:
        raise WorkloadError(f"orders not settled in the order view: {unsettled}")
    return outcomes


def settle(bench: Bench, url: str, hosting: str) -> dict[str, float]:
    """Settles the backlog at ``url``; returns its timings."""
    timeout = bench.sizes.timeout
    with ExitStack() as stack:
        observer = stack.enter_context(Shop(database_url=url, subscribers="workers"))
        heads_before = observer.log_heads()
        watch = stack.enter_context(
            Watch(lambda: observer.log_heads()["Orders"] > heads_before["Orders"])
        )
        started = time.monotonic()
        if hosting == "embedded":
            shop = stack.enter_context(Shop(database_url=url))
            settled = wait_settled(shop, timeout)
        else:
            workers = stack.enter_context(
                workers_running(url, WORKER_GROUPS, bench.scratch / "logs")
            )
            settled = wait_settled(observer, timeout, check=workers.check)
        heads_after = observer.log_heads()
    # Subscribers quicker than the watch's polling: count from the start.
    seen = watch.seen_at
    reacted = seen if seen is not None and seen < settled else started
    return {
        "seconds": settled - reacted,
        "seconds_from_start": settled - started,
        "events_written_by_the_saga": sum(heads_after.values())
        - sum(heads_before.values()),
    }


def clients(count: int) -> str:
    return f"{count} client{'s' if count != 1 else ''}"


def run(bench: Bench) -> None:
    checkouts = bench.sizes.saga_checkouts
    for hosting in ("embedded", "workers"):
        with bench.store() as url:
            bench.say(
                f"saga: {bench.sizes.clients} clients write {checkouts} checkouts"
            )
            orders, writing_rate = write_backlog(bench, url, checkouts, hosting)
            bench.say(f"saga: settling the backlog ({hosting})")
            timings = settle(bench, url, hosting)
            with Shop(database_url=url, subscribers="workers") as shop:
                outcomes = check_outcomes(shop, orders)
        bench.add(
            Result(
                WORKLOAD,
                bench.engine,
                f"settle, {hosting}",
                rate(len(orders), timings["seconds"]),
                "checkouts/s",
                baseline=writing_rate,
                baseline_label=f"written by {clients(bench.sizes.clients)}",
                target=AS_FAST_AS_WRITTEN,
                note=(
                    f"{rate(len(orders), timings['seconds_from_start']):,.0f}/s "
                    "including start-up"
                ),
                details={
                    "checkouts": len(orders),
                    **timings,
                    "outcomes": dict(outcomes),
                },
            )
        )
