"""How many PostgreSQL connections a shop holds, so that eight embedded shops
on one database stay well under the server's 100 (its default).

Every connection a shop opens names its role and its process
(``application_name`` ``eventshop:<role>:<pid>``), so the count here is the
server's own (``pg_stat_activity``), for the shop's process and its helper.
Idle connections above a pool's least size are closed after
``pool_max_idle_seconds``, one per period: the tests shorten it, so that
they see what a shop holds once it is idle without waiting for long.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from application import Settings, Shop
from application.subscribers.hosting import declared_subscribers
from tests.conftest import POSTGRES_URL, postgres_url

pytestmark = pytest.mark.postgres

LEADER_CONNECTIONS = 10
STANDBY_CONNECTIONS = 6
SETTLE_SECONDS = 20.0

_STANDBY_SHOP = """
import json, os, sys
from dataclasses import replace
from application import Settings, Shop
settings = replace(Settings.from_url(sys.argv[1]), pool_max_idle_seconds=0.5)
with Shop(settings=settings) as shop:
    print(json.dumps([os.getpid(), shop.subscribers.helper.pid]), flush=True)
    sys.stdin.read()
"""


def held_by(pids: Collection[int]) -> Counter[str]:
    """The connections the processes ``pids`` hold now, counted by role."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        names = conn.execute(
            "SELECT application_name FROM pg_stat_activity "
            "WHERE application_name LIKE 'eventshop:%%'"
        ).fetchall()
    held: Counter[str] = Counter()
    for (name,) in names:
        _, role, pid = name.split(":")
        if int(pid) in pids:
            held[role] += 1
    return held


def settled(pids: Collection[int], most: int) -> Counter[str]:
    """What ``pids`` hold once at most ``most`` (their pools shrink one
    connection per idle period), or after ``SETTLE_SECONDS``."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        held = held_by(pids)
        if held.total() <= most or time.monotonic() > deadline:
            return held
        time.sleep(0.2)


def idle_settings(schema: str) -> Settings:
    return replace(Settings.from_url(postgres_url(schema)), pool_max_idle_seconds=0.5)


def helper_pid(shop: Shop) -> int:
    helper = shop.subscribers.helper
    assert helper is not None
    assert helper.pid is not None
    return helper.pid


@contextmanager
def standby_shop(schema: str) -> Iterator[tuple[int, int]]:
    """A second embedded shop on ``schema``, in a process of its own; yields
    its process's pid and its helper's."""
    root = str(Path(__file__).resolve().parents[2])
    process = subprocess.Popen(
        [sys.executable, "-c", _STANDBY_SHOP, postgres_url(schema)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": root},
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        shop_pid, helper = json.loads(process.stdout.readline())
        yield shop_pid, helper
    finally:
        process.stdin.close()
        process.wait(timeout=60)


def wait_until_standing_by(shop: Shop, pid: int) -> None:
    """Until every subscriber's instance in ``pid`` reports itself a standby."""
    names = {subscriber.name for subscriber in declared_subscribers()}
    deadline = time.monotonic() + 30
    while True:
        reports = shop.views.reports.all()
        waiting = {
            name
            for name in names
            if not any(
                report.pid == pid and report.state == "standby"
                for report in reports.get(name, ())
            )
        }
        if not waiting:
            return
        assert time.monotonic() < deadline, f"not standing by: {sorted(waiting)}"
        time.sleep(0.2)


def test_an_embedded_shop_that_leads_its_subscribers_holds_at_most_ten(
    postgres_schema: str,
) -> None:
    with Shop(settings=idle_settings(postgres_schema)) as shop:
        shop.register_product("FOOT-1", "footprint", "1.00")
        shop.receive_stock("FOOT-1", 3)
        shop.wait_until_processed()
        pids = {os.getpid(), helper_pid(shop)}

        held = settled(pids, LEADER_CONNECTIONS)

    assert held.total() <= LEADER_CONNECTIONS, held
    # One LISTEN for the three logs; one lock session each for the ticker
    # (the shop) and the subscribers and chain keepers (the helper).
    assert held["listen"] == 1, held
    assert held["locks"] == 2, held


def test_an_embedded_shop_standing_by_holds_at_most_six(postgres_schema: str) -> None:
    with Shop(settings=idle_settings(postgres_schema)) as leader:
        leader.wait_until_processed()
        with standby_shop(postgres_schema) as (shop_pid, helper):
            wait_until_standing_by(leader, helper)
            leader.register_product("FOOT-2", "footprint", "1.00")
            leader.wait_until_processed()

            held = settled({shop_pid, helper}, STANDBY_CONNECTIONS)

    assert held.total() <= STANDBY_CONNECTIONS, held
    # A standby neither reads the logs nor listens until it leads.
    assert held["listen"] == 0, held


def test_a_shop_left_to_workers_holds_two(postgres_schema: str) -> None:
    with Shop(settings=idle_settings(postgres_schema), subscribers="workers") as shop:
        shop.register_product("FOOT-3", "footprint", "1.00")
        shop.get_stock("FOOT-3")

        held = settled({os.getpid()}, 2)

    assert held == Counter(events=1, views=1), held


def test_a_closed_shop_holds_none(postgres_schema: str) -> None:
    with Shop(settings=idle_settings(postgres_schema), subscribers="threads") as shop:
        shop.register_product("FOOT-4", "footprint", "1.00")
        shop.wait_until_processed()
        assert held_by({os.getpid()})["listen"] == 1

    # Its pool, its lock session and its LISTEN connection are closed with it
    # (they are per process, and shared by whatever else is open in it).
    deadline = time.monotonic() + 5
    while (held := held_by({os.getpid()})) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not held, held
