"""Verifying a service's stored log against its hash chain, on both engines,
after a database superuser has switched the append-only protection off and
altered, removed or inserted stored events."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from application import Settings, Shop
from application.audit.chain_verification import verify_chains
from application.subscribers.chain_keeper import ChainKeeper
from projections.audit.chain import ChainGapError, ChainVerdict
from tests.audit.chain_testing import (
    TEA,
    StoredRow,
    Tampering,
    fill_logs,
    keeper_of,
    link_over_log,
    tampering,
)

INVENTORY = "Inventory"


@pytest.fixture
def filled(shop: Shop) -> Shop:
    """Given events in every log."""
    fill_logs(shop)
    return shop


@pytest.fixture
def keeper(filled: Shop) -> Iterator[ChainKeeper]:
    """The Inventory log's keeper, its chain covering the whole log."""
    with keeper_of(filled, INVENTORY) as inventory_keeper:
        assert inventory_keeper.extend_now() == filled.inventory.log_head()
        yield inventory_keeper


def positions(settings: Settings, service: str = INVENTORY) -> list[int]:
    with tampering(settings, service) as table:
        return [row.position for row in table.rows()]


def test_untouched_logs_are_intact(settings: Settings, filled: Shop) -> None:
    verdicts = verify_chains(settings)

    heads = filled.log_heads()
    assert set(verdicts) == {"Carts", "Orders", "Inventory"}
    for service, verdict in verdicts.items():
        assert verdict == ChainVerdict(
            service,
            "intact",
            position=None,
            checked=heads[service],
            head=heads[service],
            unrecorded=0,
            head_link=link_over_log(filled, service),
        )
        assert heads[service] > 0


def _altered_state(table: Tampering, position: int) -> None:
    [row] = [row for row in table.rows() if row.position == position]
    # One byte more: still valid JSON meaning the same, but not what was stored.
    table.set_state(position, row.state + b" ")


ALTERATIONS: dict[str, Callable[[Tampering, int], None]] = {
    "state": _altered_state,
    "topic": lambda table, position: table.set_topic(position, "domain.x:Forged"),
    "version": lambda table, position: table.set_version(position, 1000 + position),
}


@pytest.mark.parametrize("alteration", ALTERATIONS)
def test_the_first_altered_event_is_reported_at_its_position(
    settings: Settings, keeper: ChainKeeper, alteration: str
) -> None:
    stored = positions(settings)
    first, later = stored[4], stored[6]

    with tampering(settings, INVENTORY) as table:
        ALTERATIONS[alteration](table, later)
        ALTERATIONS[alteration](table, first)

    verdict = keeper.verify()
    assert (verdict.kind, verdict.position, verdict.checked) == ("altered", first, 4)
    assert not verdict.intact
    # Chaining what is new first (as `eventshop audit verify` does) hides nothing.
    assert verify_chains(settings, ["inventory"])[INVENTORY] == verdict


def test_the_first_removed_event_is_reported_at_its_position(
    settings: Settings, keeper: ChainKeeper
) -> None:
    stored = positions(settings)

    with tampering(settings, INVENTORY) as table:
        table.delete(stored[5])
        table.delete(stored[2])

    verdict = keeper.verify()
    assert (verdict.kind, verdict.position, verdict.checked) == (
        "removed",
        stored[2],
        2,
    )
    assert verify_chains(settings, ["Inventory"])[INVENTORY] == verdict


def test_removing_the_newest_chained_event_is_reported(
    settings: Settings, keeper: ChainKeeper
) -> None:
    newest = positions(settings)[-1]

    with tampering(settings, INVENTORY) as table:
        table.delete(newest)

    verdict = keeper.verify()
    assert (verdict.kind, verdict.position) == ("removed", newest)


def test_an_event_inserted_below_the_chains_head_is_reported(
    settings: Settings, filled: Shop
) -> None:
    stored = positions(settings)
    gap = stored[3]
    # A log with a hole in it when it was chained (as PostgreSQL's sequences
    # leave after a rolled-back write), later filled in with a forged event.
    with tampering(settings, INVENTORY) as table:
        [removed] = [row for row in table.rows() if row.position == gap]
        table.delete(gap)
    with keeper_of(filled, INVENTORY) as keeper:
        keeper.extend_now()
        assert keeper.verify().intact

        with tampering(settings, INVENTORY) as table:
            table.insert(
                StoredRow(
                    gap,
                    uuid.uuid4(),
                    1,
                    removed.topic,
                    removed.state,
                )
            )

        verdict = keeper.verify()
    assert (verdict.kind, verdict.position, verdict.checked) == ("inserted", gap, 3)


def test_an_event_forged_before_the_first_position_is_reported(
    settings: Settings, keeper: ChainKeeper
) -> None:
    with tampering(settings, INVENTORY) as table:
        first = table.rows()[0]
        table.insert(StoredRow(0, uuid.uuid4(), 1, first.topic, first.state))

    verdict = keeper.verify()
    assert (verdict.kind, verdict.position, verdict.checked) == ("inserted", 0, 0)


def test_the_keeper_reads_the_log_in_pages(filled: Shop) -> None:
    with keeper_of(filled, INVENTORY) as default_keeper:
        keeper = ChainKeeper(filled.inventory, default_keeper.chains, page_size=3)
        stopped = threading.Event()
        stopped.set()
        assert keeper.extend_now(stopped) == 0

        head = filled.inventory.log_head()
        assert head > 3 * 2
        assert keeper.extend_now() == head
        verdict = keeper.verify()
    assert (verdict.kind, verdict.checked, verdict.head) == ("intact", head, head)
    assert verdict.head_link == link_over_log(filled, INVENTORY)


def test_events_after_the_last_link_are_unrecorded_not_tampering(
    settings: Settings, filled: Shop, keeper: ChainKeeper
) -> None:
    chained = filled.inventory.log_head()
    for _ in range(3):
        filled.receive_stock(TEA, 1)

    behind = keeper.verify()
    assert (behind.kind, behind.checked, behind.head, behind.unrecorded) == (
        "intact",
        chained,
        chained,
        3,
    )
    assert "3 newer events not yet chained" in behind.describe()

    assert keeper.extend_now() == chained + 3
    assert keeper.verify() == ChainVerdict(
        INVENTORY,
        "intact",
        None,
        checked=chained + 3,
        head=chained + 3,
        unrecorded=0,
        head_link=link_over_log(filled, INVENTORY),
    )


def test_extending_skips_what_is_chained_and_refuses_a_gap(
    filled: Shop, keeper: ChainKeeper
) -> None:
    recorder = filled.inventory.recorder
    head = filled.inventory.log_head()
    chains = keeper.chains
    before = list(chains.links(INVENTORY))

    # The same events again, read from the start: nothing changes.
    everything = recorder.select_notifications(0, 100, inclusive_of_start=False)
    assert chains.extend(INVENTORY, everything, after=0) == head
    assert list(chains.links(INVENTORY)) == before

    filled.receive_stock(TEA, 1)
    filled.receive_stock(TEA, 1)
    newest = recorder.select_notifications(head + 1, 10, inclusive_of_start=False)
    with pytest.raises(ChainGapError):
        chains.extend(INVENTORY, newest, after=head + 1)
    with pytest.raises(ValueError, match="increasing"):
        chains.extend(INVENTORY, list(reversed(everything)), after=0)
    assert list(chains.links(INVENTORY)) == before

    assert chains.extend(INVENTORY, everything[-2:], after=head - 2) == head
    assert keeper.extend_now() == head + 2


def test_the_keeper_follows_the_log_until_stopped(
    filled: Shop, keeper: ChainKeeper
) -> None:
    keeper.start()
    try:
        for _ in range(5):
            filled.receive_stock(TEA, 1)
        head = filled.inventory.log_head()
        deadline = time.monotonic() + 10
        while (chained := keeper.chains.head(INVENTORY)) is None or (
            chained.position < head
        ):
            assert time.monotonic() < deadline, "the keeper fell behind"
            time.sleep(0.02)
    finally:
        keeper.stop()
        keeper.join(timeout=10)
    assert not keeper.is_alive
    assert keeper.error is None
    verdict = keeper.verify()
    assert verdict.intact
    assert (verdict.checked, verdict.unrecorded) == (head, 0)
