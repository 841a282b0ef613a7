"""Properties of the chain: over generated logs (with holes in their positions,
as PostgreSQL's sequences leave) read in pages smaller than the logs, and over
a shop's stored log on both engines."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
from eventsourcing.persistence import Notification
from hypothesis import given
from hypothesis import strategies as st

from application import Settings, Shop
from application.subscribers.chain_keeper import ChainKeeper
from projections.audit.chain import ChainStore
from projections.store import ViewStore
from projections.store.engine import sqlite_engine
from tests.audit.chain_testing import fill_logs, keeper_of, tampering
from tests.conftest import ENGINES, settings_on

TOPICS = ["domain.cart:Cart.Opened", "domain.cart:Cart.ItemAdded"]


@st.composite
def logs(draw: st.DrawFn) -> list[Notification]:
    """A stored log: positions rising with holes, states of any bytes."""
    originator = uuid.UUID(int=draw(st.integers(0, 3)))
    size = draw(st.integers(1, 12))
    position = 0
    log = []
    for version in range(1, size + 1):
        position += draw(st.integers(1, 3))
        log.append(
            Notification(
                id=position,
                originator_id=originator,
                originator_version=version,
                topic=draw(st.sampled_from(TOPICS)),
                state=draw(st.binary(max_size=12)),
            )
        )
    return log


@pytest.fixture(scope="module")
def chains(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainStore]:
    """One chain store for every example (each chains a service of its own);
    pages of 3 links, so that walks cross page boundaries."""
    path: Path = tmp_path_factory.mktemp("chain") / "views.sqlite3"
    engine = sqlite_engine(path)
    store = ChainStore(ViewStore(engine, ()), page_size=3)
    store.create_schema()
    yield store
    engine.dispose()


def a_service() -> str:
    return f"service-{uuid.uuid4().hex[:12]}"


def chain_in_batches(
    chains: ChainStore, service: str, log: list[Notification], cuts: list[int]
) -> None:
    after = 0
    for start, end in zip([0, *sorted(cuts)], [*sorted(cuts), len(log)], strict=True):
        batch = log[start:end]
        if batch:
            after = chains.extend(service, batch, after=after)


examples = hypothesis.settings(max_examples=40, deadline=None)


@examples
@given(log=logs(), data=st.data())
def test_an_untouched_log_is_always_intact(
    chains: ChainStore, log: list[Notification], data: st.DataObject
) -> None:
    service = a_service()
    cuts = data.draw(st.lists(st.integers(0, len(log)), max_size=3))
    chain_in_batches(chains, service, log, cuts)

    verdict = chains.verify(service, iter(log))

    assert verdict.intact
    assert (verdict.checked, verdict.head, verdict.unrecorded) == (
        len(log),
        log[-1].id,
        0,
    )


@examples
@given(log=logs(), data=st.data())
def test_altering_any_single_state_is_detected_at_exactly_its_position(
    chains: ChainStore, log: list[Notification], data: st.DataObject
) -> None:
    service = a_service()
    chains.extend(service, log, after=0)
    index = data.draw(st.integers(0, len(log) - 1))
    original = log[index]
    state = data.draw(st.binary(max_size=12).filter(lambda new: new != original.state))
    tampered = [*log[:index], _with_state(original, state), *log[index + 1 :]]

    verdict = chains.verify(service, iter(tampered))

    assert (verdict.kind, verdict.position, verdict.checked) == (
        "altered",
        original.id,
        index,
    )


@examples
@given(log=logs(), data=st.data())
def test_removing_any_single_event_is_detected_at_exactly_its_position(
    chains: ChainStore, log: list[Notification], data: st.DataObject
) -> None:
    service = a_service()
    chains.extend(service, log, after=0)
    index = data.draw(st.integers(0, len(log) - 1))

    verdict = chains.verify(service, iter([*log[:index], *log[index + 1 :]]))

    assert (verdict.kind, verdict.position, verdict.checked) == (
        "removed",
        log[index].id,
        index,
    )


@examples
@given(log=logs(), data=st.data())
def test_an_event_inserted_in_any_hole_is_detected_at_exactly_its_position(
    chains: ChainStore, log: list[Notification], data: st.DataObject
) -> None:
    taken = {notification.id for notification in log}
    holes = [position for position in range(1, log[-1].id) if position not in taken]
    hypothesis.assume(holes)
    service = a_service()
    chains.extend(service, log, after=0)
    hole = data.draw(st.sampled_from(holes))
    forged = _with_state(log[0], b"forged", position=hole)
    tampered = sorted([*log, forged], key=lambda notification: notification.id)

    verdict = chains.verify(service, iter(tampered))

    assert (verdict.kind, verdict.position) == ("inserted", hole)
    assert verdict.checked == sum(1 for position in taken if position < hole)


@examples
@given(log=logs(), data=st.data())
def test_events_after_the_chain_are_unrecorded_and_a_later_extend_covers_them(
    chains: ChainStore, log: list[Notification], data: st.DataObject
) -> None:
    service = a_service()
    chained = data.draw(st.integers(0, len(log)))
    chains.extend(service, log[:chained], after=0)

    behind = chains.verify(service, iter(log))

    assert behind.intact
    assert (behind.checked, behind.unrecorded) == (chained, len(log) - chained)

    head = log[chained - 1].id if chained else 0
    chains.extend(service, log[chained:], after=head)
    caught_up = chains.verify(service, iter(log))
    assert (caught_up.intact, caught_up.checked, caught_up.unrecorded) == (
        True,
        len(log),
        0,
    )


def _with_state(
    notification: Notification, state: bytes, position: int | None = None
) -> Notification:
    return Notification(
        id=notification.id if position is None else position,
        originator_id=notification.originator_id,
        originator_version=notification.originator_version,
        topic=notification.topic,
        state=state,
    )


# -- the same over a real stored log -------------------------------------------


@pytest.fixture(scope="module", params=ENGINES)
def stored(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, ChainKeeper, list[int]]]:
    """A shop's Inventory log on each engine, chained once for every example,
    with its positions."""
    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(
            settings_on(request.param, tmp_path_factory.mktemp("data"))
        )
        shop = stack.enter_context(Shop(settings=settings, subscribers="workers"))
        fill_logs(shop, receipts=10)
        keeper = stack.enter_context(keeper_of(shop, "Inventory"))
        keeper.extend_now()
        with tampering(settings, "Inventory") as table:
            positions = [row.position for row in table.rows()]
        yield settings, keeper, positions


@hypothesis.settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_altering_any_stored_state_is_detected_at_exactly_its_position(
    stored: tuple[Settings, ChainKeeper, list[int]], data: st.DataObject
) -> None:
    settings, keeper, positions = stored
    assert keeper.verify().intact
    index = data.draw(st.integers(0, len(positions) - 1))
    position = positions[index]

    with tampering(settings, "Inventory") as table:
        [row] = [row for row in table.rows() if row.position == position]
        state = data.draw(st.binary(max_size=40).filter(lambda new: new != row.state))
        table.set_state(position, state)
        try:
            verdict = keeper.verify()
        finally:
            table.set_state(position, row.state)

    assert (verdict.kind, verdict.position, verdict.checked) == (
        "altered",
        position,
        index,
    )
    assert keeper.verify().intact
