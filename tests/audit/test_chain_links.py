"""The link function: what a link covers, and that no two events share one."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import Notification

from projections.audit.chain import GENESIS, link

EVENT = Notification(
    id=7,
    originator_id=UUID(int=42),
    originator_version=3,
    topic="domain.inventory:InventoryItem.StockReceived",
    state=b'{"quantity":5}',
)


def test_a_link_is_a_sha256_digest_that_depends_only_on_its_inputs() -> None:
    first = link(GENESIS, EVENT)

    assert len(first) == hashlib.sha256().digest_size == len(GENESIS)
    assert bytes(32) == GENESIS
    assert link(GENESIS, dataclasses.replace(EVENT)) == first
    assert link(first, EVENT) != first


@pytest.mark.parametrize(
    "change",
    [
        {"id": 8},
        {"originator_id": UUID(int=43)},
        {"originator_version": 4},
        {"topic": "domain.inventory:InventoryItem.StockAdjusted"},
        {"state": b'{"quantity":6}'},
        {"state": b'{"quantity":5} '},
    ],
)
def test_every_part_of_the_stored_event_is_covered(change: dict[str, Any]) -> None:
    changed = dataclasses.replace(EVENT, **change)

    assert link(GENESIS, changed) != link(GENESIS, EVENT)


def test_the_previous_link_is_covered() -> None:
    other_previous = bytes(31) + b"\x01"

    assert link(other_previous, EVENT) != link(GENESIS, EVENT)


def test_bytes_moved_between_fields_make_another_link() -> None:
    # Without lengths before the fields, both would hash "...StockReceived{...".
    moved = dataclasses.replace(EVENT, topic=EVENT.topic + '{"quantity"', state=b":5}")

    assert link(GENESIS, moved) != link(GENESIS, EVENT)


def test_a_previous_link_of_another_size_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        link(b"short", EVENT)
