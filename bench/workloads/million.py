"""Workload 2: a million events caught up and rebuilt, with peak memory.

The events are made quickly rather than through commands: inventory items
built in memory with the domain's own methods (registered, stock received,
then reservations each committed or released: 40 events per item, so no item
reaches the snapshot interval) and saved through the Inventory service in
chunks of 250 items (10,000 events) per transaction.

Then, for each projection named (``stock``, ``audit_inventory``):

* catch-up: an ``eventshop worker NAME`` process catches the live read model up
  from position 0 (a rebuild compares with the live generation, so it must
  have caught up first);
* rebuild: a child process that does only ``shop.rebuild(NAME,
  mode="verify")``.

Each child's peak resident memory is ``ru_maxrss`` of that child (``wait4``),
against the target of 300 MB; its speed is compared with the read limit of
the log (see ``read_models``).
"""

from __future__ import annotations

import json
import random
import time
import uuid

from application.shop import Shop
from bench.processes import run_measured, workers_running
from bench.results import Result, Target, WorkloadError, rate
from bench.workloads.common import Bench, LogRead, read_limit, wait_settled
from domain.inventory import InventoryItem

WORKLOAD = "million events"
EVENTS_PER_ITEM = 40
ITEMS_PER_SAVE = 250
MEMORY_TARGET = Target(max_value=300)
HALF_THE_READ_LIMIT = Target(min_ratio=0.5)


def item_history(number: int, rng: random.Random) -> InventoryItem:
    """One item with ``EVENTS_PER_ITEM`` events, not yet saved."""
    item = InventoryItem.register(f"M{number:07d}", f"item {number}", "2.50")
    item.receive(1_000)
    for _ in range((EVENTS_PER_ITEM - 2) // 2):
        order_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        item.reserve(order_id, rng.randint(1, 3))
        if rng.random() < 0.7:
            item.commit(order_id)
        else:
            item.release(order_id)
    return item


def generate(shop: Shop, events: int) -> int:
    """Saves at least ``events`` events; returns how many."""
    rng = random.Random(7)
    items = -(-events // EVENTS_PER_ITEM)
    for first in range(0, items, ITEMS_PER_SAVE):
        chunk = [
            item_history(number, rng)
            for number in range(first, min(first + ITEMS_PER_SAVE, items))
        ]
        shop.inventory.save(*chunk)
    return items * EVENTS_PER_ITEM


def catch_up_in_worker(
    bench: Bench, shop: Shop, url: str, name: str, limit: LogRead
) -> None:
    bench.say(f"million: catch-up of {name} in a worker")
    with workers_running(url, [[name]], bench.scratch / "logs") as workers:
        begun = time.monotonic()
        settled = wait_settled(shop, bench.sizes.timeout, [name], workers.check)
        [worker] = workers.stop()
    bench.add(
        Result(
            WORKLOAD,
            bench.engine,
            f"catch-up {name}",
            rate(limit.notifications, settled - begun),
            "events/s",
            baseline=limit.rate,
            baseline_label="read limit",
            target=HALF_THE_READ_LIMIT,
            note="includes the worker's start-up",
            details={
                "notifications": limit.notifications,
                "seconds": settled - begun,
                "peak_rss_mb": worker.peak_rss_mb,
            },
        )
    )
    bench.add(
        Result(
            WORKLOAD,
            bench.engine,
            f"catch-up {name}: worker peak RSS",
            worker.peak_rss_mb,
            "MB",
            target=MEMORY_TARGET,
            details={"how": "ru_maxrss of the worker process (wait4)"},
        )
    )


def rebuild_in_child(bench: Bench, url: str, name: str, limit: LogRead) -> None:
    bench.say(f"million: rebuild of {name} in a child process")
    finished = run_measured(
        ["-m", "bench.rebuild_child", url, name],
        timeout=bench.sizes.timeout,
        log=bench.scratch / "logs" / f"rebuild-{name}-{bench.engine}.log",
    )
    report = json.loads(finished.output.strip().splitlines()[-1])
    if not report["agrees"]:
        raise WorkloadError(f"the rebuild of {name} differs from live")
    bench.add(
        Result(
            WORKLOAD,
            bench.engine,
            f"rebuild {name}",
            rate(limit.notifications, report["seconds"]),
            "events/s",
            baseline=limit.rate,
            baseline_label="read limit",
            target=HALF_THE_READ_LIMIT,
            details={
                "notifications": limit.notifications,
                **report,
                "peak_rss_mb": finished.peak_rss_mb,
            },
        )
    )
    bench.add(
        Result(
            WORKLOAD,
            bench.engine,
            f"rebuild {name}: peak RSS",
            finished.peak_rss_mb,
            "MB",
            target=MEMORY_TARGET,
            details={"how": "ru_maxrss of the child (wait4)"},
        )
    )


def run(bench: Bench) -> None:
    sizes = bench.sizes
    (bench.scratch / "logs").mkdir(parents=True, exist_ok=True)
    with (
        bench.store() as url,
        Shop(database_url=url, subscribers="workers") as shop,
    ):
        started = time.perf_counter()
        events = generate(shop, sizes.million_events)
        generated = time.perf_counter() - started
        bench.say(f"million: {events:,} events saved in {generated:.0f} s")
        limit = read_limit(shop.inventory)
        bench.fact(
            WORKLOAD,
            events=events,
            generated_seconds=generated,
            how=(
                f"{events // EVENTS_PER_ITEM:,} inventory items of "
                f"{EVENTS_PER_ITEM} events built in memory, saved through "
                f"the Inventory service {ITEMS_PER_SAVE} items per save"
            ),
            read_limit_events_per_second=limit.rate,
        )
        for name in sizes.million_projections:
            catch_up_in_worker(bench, shop, url, name, limit)
            rebuild_in_child(bench, url, name, limit)
