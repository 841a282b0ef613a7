"""Workload 1: catch-up and rebuild of every read model on a real store.

The store: ``store_checkouts`` checkouts written by ``clients`` processes
through the real ``Shop``, settled by the saga (its three process managers in
an ``eventshop worker`` process), then paid, shipped and cancelled in part and
settled again. The read models are not running meanwhile, so that:

* catch-up: an embedded ``Shop`` is started on the whole backlog and each read
  model is timed until it has caught up (all of them at once, as a shop
  starting on a backlog does);
* rebuild: each read model is rebuilt with ``shop.rebuild(name,
  mode="verify")``, right after the read limit of its log is measured: the
  library's recorder reading the log in pages of 500 and its mapper decoding
  every notification, nothing else. Figures are notifications of the log per
  second, for both;
* raw inserts: after each audit index's rebuild, the floor under it: the same
  log read the same way and the index's rows written by hand, no framework
  (``bench.workloads.raw_inserts``);
* catch-up, all read models, is also set beside the sum of the read models'
  rebuild times: in one process they share its CPU, so the sum bounds it.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from eventsourcing.application import Application

from application.shop import Shop
from bench.processes import run_clients, workers_running
from bench.results import Result, Target, WorkloadError, rate
from bench.shopping import (
    ClientReport,
    act_on_orders,
    span,
    split,
    stock_up,
    write_checkouts,
)
from bench.workloads.common import (
    LOGS,
    PROCESS_MANAGERS,
    READ_MODEL_LOGS,
    READ_MODELS,
    Bench,
    LogRead,
    read_limit,
    services,
    settled_moments,
    wait_settled,
)
from bench.workloads.raw_inserts import raw_audit_inserts
from projections.audit.indexes import AUDIT_INDEXES

WORKLOAD = "read models"
HALF_THE_READ_LIMIT = Target(min_ratio=0.5)
ABANDON_SHARE = 0.05


def write_checkouts_by_clients(
    bench: Bench, url: str, checkouts: int, *, with_delivery: bool = True
) -> list[ClientReport]:
    """Stocks the catalogue and has ``clients`` processes write ``checkouts``
    checkouts between them (and abandon a share of other carts), while nothing
    reacts. The Carts log is then whole: nothing downstream writes to it.
    ``with_delivery``: checkouts carry delivery details, whose customers'
    keys are kept in the shop's views database."""
    sizes = bench.sizes
    with Shop(database_url=url, subscribers="workers") as shop:
        stock_up(shop, checkouts)
    bench.say(f"store: {sizes.clients} clients write {checkouts} checkouts")
    shares = [checkouts // sizes.clients] * sizes.clients
    shares[0] += checkouts - sum(shares)
    return run_clients(
        write_checkouts,
        [
            (url, client, share, ABANDON_SHARE, with_delivery)
            for client, share in enumerate(shares)
        ],
        timeout=sizes.timeout,
    )


def build_store(bench: Bench, url: str) -> None:
    """Fills the store at ``url`` as the module says."""
    sizes = bench.sizes
    written = write_checkouts_by_clients(bench, url, sizes.store_checkouts)
    order_ids = [order for report in written for order in report.order_ids]
    with (
        Shop(database_url=url, subscribers="workers") as shop,
        workers_running(url, [PROCESS_MANAGERS], bench.scratch / "logs") as workers,
    ):
        bench.say("store: the saga settles the checkouts")
        wait_settled(shop, sizes.timeout, only=PROCESS_MANAGERS, check=workers.check)
        acted: list[ClientReport] = run_clients(
            act_on_orders,
            [
                (url, client, part)
                for client, part in enumerate(split(order_ids, sizes.clients))
            ],
            timeout=sizes.timeout,
        )
        bench.say("store: the saga settles payments, shipments and cancellations")
        wait_settled(shop, sizes.timeout, only=PROCESS_MANAGERS, check=workers.check)
        heads = shop.log_heads()
    outcomes = sum((report.outcomes for report in written + acted), start=Counter())
    bench.fact(
        WORKLOAD,
        checkouts=len(order_ids),
        events=sum(heads.values()),
        log_heads=heads,
        orders=dict(outcomes),
        writing_checkouts_per_second=rate(len(order_ids), span(written)),
    )
    bench.say(f"store: {sum(heads.values()):,} events {heads}")


def catch_up(bench: Bench, url: str) -> dict[str, float]:
    """Starts an embedded shop on the backlog; returns, per read model, the
    seconds until it had caught up."""
    started = time.monotonic()
    with Shop(database_url=url) as shop:
        finished = settled_moments(shop, READ_MODELS, bench.sizes.timeout)
        shop.wait_until_processed(timeout=bench.sizes.timeout)
    seconds = {name: moment - started for name, moment in finished.items()}
    bench.fact(WORKLOAD, catch_up_seconds=seconds)
    return seconds


def rebuild_each(bench: Bench, url: str) -> tuple[dict[str, LogRead], dict[str, float]]:
    """Rebuilds every read model, each right after the read limit of its log
    is measured, and writes the raw-insert floor of each audit index; returns
    those read limits and the rebuilds' seconds."""
    limits: dict[str, LogRead] = {}
    rebuilt_seconds: dict[str, float] = {}
    with Shop(database_url=url, subscribers="workers") as shop:
        logs = services(shop)
        for name in READ_MODELS:
            log = READ_MODEL_LOGS[name]
            limit = limits[name] = read_limit(logs[log])
            bench.say(f"rebuild {name} ({limit.notifications:,} in {log})")
            [report] = shop.rebuild(name, mode="verify")
            if not report.agrees:
                raise WorkloadError(f"the rebuild of {name} differs from live")
            rebuilt_seconds[name] = report.seconds
            bench.add(
                Result(
                    WORKLOAD,
                    bench.engine,
                    f"rebuild {name}",
                    # The log's length, not what the rebuild read: one that
                    # skips unwanted notifications in SQL does less work.
                    rate(limit.notifications, report.seconds),
                    "events/s",
                    baseline=limit.rate,
                    baseline_label="read limit",
                    target=HALF_THE_READ_LIMIT,
                    details={
                        "log": log,
                        "notifications": limit.notifications,
                        "notifications_read": report.notifications_read,
                        "events_applied": report.events_applied,
                        "seconds": report.seconds,
                        "read_limit_seconds": limit.seconds,
                    },
                )
            )
            if name in AUDIT_FLOORS:
                add_raw_inserts(bench, logs[log], name, limit, report.seconds)
    return limits, rebuilt_seconds


AUDIT_FLOORS = {index.name: index for index in AUDIT_INDEXES}


def add_raw_inserts(
    bench: Bench,
    service: Application[Any],
    name: str,
    limit: LogRead,
    rebuild_seconds: float,
) -> None:
    index = AUDIT_FLOORS[name]
    bench.say(f"raw inserts of {name}: the floor under its rebuild")
    floor, written = raw_audit_inserts(
        service,
        index,
        bench.engine,
        postgres_url=bench.postgres_url,
        scratch=bench.scratch,
    )
    if written[index.events] != floor.notifications:
        raise WorkloadError(
            f"raw inserts wrote {written[index.events]} {index.events} rows "
            f"for {floor.notifications} events"
        )
    bench.add(
        Result(
            WORKLOAD,
            bench.engine,
            f"raw inserts {name}",
            floor.rate,
            "events/s",
            baseline=limit.rate,
            baseline_label="read limit",
            target=HALF_THE_READ_LIMIT,
            note=(
                "hand-written floor; the rebuild took "
                f"{rebuild_seconds / floor.seconds:.2f}x its time"
            ),
            details={
                "log": READ_MODEL_LOGS[name],
                "notifications": floor.notifications,
                "seconds": floor.seconds,
                "rows": written,
                "rebuild_seconds": rebuild_seconds,
            },
        )
    )


def add_catch_up_results(
    bench: Bench,
    caught_up: dict[str, float],
    limits: dict[str, LogRead],
    rebuilt_seconds: dict[str, float],
) -> None:
    for name in READ_MODELS:
        limit = limits[name]
        bench.add(
            Result(
                WORKLOAD,
                bench.engine,
                f"catch-up {name}",
                rate(limit.notifications, caught_up[name]),
                "events/s",
                baseline=limit.rate,
                baseline_label="read limit",
                target=HALF_THE_READ_LIMIT,
                note="all at once, embedded",
                details={
                    "log": READ_MODEL_LOGS[name],
                    "notifications": limit.notifications,
                    "seconds": caught_up[name],
                },
            )
        )
    per_log = {READ_MODEL_LOGS[name]: limits[name] for name in READ_MODELS}
    total = sum(per_log[log].notifications for log in LOGS)
    seconds = max(caught_up.values())
    rebuilding_all = sum(rebuilt_seconds.values())
    bench.add(
        Result(
            WORKLOAD,
            bench.engine,
            "catch-up, all read models",
            rate(total, seconds),
            "events/s",
            baseline=rate(total, sum(per_log[log].seconds for log in LOGS)),
            baseline_label="read limit (each log once)",
            target=HALF_THE_READ_LIMIT,
            note=(
                f"{seconds / rebuilding_all:.2f}x the time of rebuilding "
                "each read model in turn"
            ),
            details={
                "notifications": total,
                "seconds": seconds,
                "sum_of_rebuild_seconds": rebuilding_all,
            },
        )
    )


def run(bench: Bench) -> None:
    with bench.store() as url:
        build_store(bench, url)
        bench.say("catch-up: every read model at once, embedded")
        caught_up = catch_up(bench, url)
        limits, rebuilt_seconds = rebuild_each(bench, url)
    add_catch_up_results(bench, caught_up, limits, rebuilt_seconds)
