"""Workload 2: a million events caught up and rebuilt, with peak memory.

The events are made quickly rather than through commands: inventory items
built in memory with the domain's own methods (registered, stock received,
then reservations each committed or released: 40 events per item, so no item
reaches the snapshot interval) and saved through the Inventory service in
chunks of 250 items (10,000 events) per transaction, by two client processes
(encoding the events is most of the work).

Then, for the projections named (``stock``, ``audit_inventory``):

* catch-up: one ``eventshop worker NAME...`` process catches the live read
  models up from position 0 (a rebuild compares with the live generation, so
  it must have caught up first);
* rebuild: for each, a child process that does only ``shop.rebuild(NAME,
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
from collections.abc import Sequence

from application.shop import Shop
from bench.processes import StartSignal, run_clients, run_measured, workers_running
from bench.results import Result, Target, WorkloadError, rate
from bench.workloads.common import Bench, LogRead, read_limit, settled_moments
from domain.inventory import InventoryItem

WORKLOAD = "million events"
EVENTS_PER_ITEM = 40
ITEMS_PER_SAVE = 250
GENERATING_CLIENTS = 2
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


def generate_share(
    database_url: str, client: int, clients: int, items: int, *, start: StartSignal
) -> int:
    """Saves every ``clients``-th of ``items`` items, from the ``client``-th;
    returns the events saved. (Encoding the events is most of the work, so
    a client process per core saves them about that much sooner.)"""
    rng = random.Random(7 + client)
    numbers = range(client, items, clients)
    with Shop(database_url=database_url, subscribers="workers") as shop:
        start()
        for first in range(0, len(numbers), ITEMS_PER_SAVE):
            chunk = numbers[first : first + ITEMS_PER_SAVE]
            shop.inventory.save(*(item_history(number, rng) for number in chunk))
    return len(numbers) * EVENTS_PER_ITEM


def generate(bench: Bench, url: str) -> int:
    """Saves at least ``million_events`` events; returns how many."""
    items = -(-bench.sizes.million_events // EVENTS_PER_ITEM)
    clients = GENERATING_CLIENTS
    saved = run_clients(
        generate_share,
        [(url, client, clients, items) for client in range(clients)],
        timeout=bench.sizes.timeout,
    )
    return sum(saved)


def catch_up_in_worker(
    bench: Bench, shop: Shop, url: str, names: Sequence[str], limit: LogRead
) -> None:
    """Catches the live read models up in one ``eventshop worker`` process
    (one reader of the log for all of them, where the code shares reads)."""
    bench.say(f"million: catch-up of {', '.join(names)} in a worker")
    with workers_running(url, [names], bench.scratch / "logs") as workers:
        begun = time.monotonic()
        moments = settled_moments(shop, names, bench.sizes.timeout, workers.check)
        [worker] = workers.stop()
    for name in names:
        bench.add(
            Result(
                WORKLOAD,
                bench.engine,
                f"catch-up {name}",
                rate(limit.notifications, moments[name] - begun),
                "events/s",
                baseline=limit.rate,
                baseline_label="read limit",
                target=HALF_THE_READ_LIMIT,
                note=f"in one worker with {len(names) - 1} other(s); incl. start-up"
                if len(names) > 1
                else "includes the worker's start-up",
                details={
                    "notifications": limit.notifications,
                    "seconds": moments[name] - begun,
                    "worker": list(names),
                },
            )
        )
    bench.add(
        Result(
            WORKLOAD,
            bench.engine,
            f"catch-up worker ({', '.join(names)}): peak RSS",
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
        events = generate(bench, url)
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
                f"the Inventory service {ITEMS_PER_SAVE} items per save, "
                f"by {GENERATING_CLIENTS} client processes"
            ),
            read_limit_events_per_second=limit.rate,
        )
        catch_up_in_worker(bench, shop, url, sizes.million_projections, limit)
        for name in sizes.million_projections:
            rebuild_in_child(bench, url, name, limit)
