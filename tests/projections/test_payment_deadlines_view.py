"""Pending payment deadlines: one row per order confirmed with a deadline, gone
once the order is paid, cancelled or shipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from domain.order import Order
from projections.read_models.payment_deadlines import (
    PaymentDeadline,
    PaymentDeadlines,
    payment_deadlines_due,
)
from projections.store import ViewStore
from tests.projections.projection_testing import (
    TEA,
    Feeder,
    events_of,
    new_view_store,
    placed_order,
)

DUE = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LONG_AFTER = DUE + timedelta(days=365)


@pytest.fixture
def store(tmp_path: Path) -> ViewStore:
    return new_view_store(tmp_path / "v.sqlite3", PaymentDeadlines)


def confirmed(due: datetime | None, customer_id: str = "customer-1") -> Order:
    order = placed_order(customer_id, (TEA, 1, "6.20"))
    order.confirm(payment_due_at=due)
    return order


def test_an_order_confirmed_with_a_deadline_is_pending_until_it_passes(
    store: ViewStore,
) -> None:
    feed = Feeder(store, PaymentDeadlines)
    order = confirmed(DUE)

    feed(events_of(order))

    assert payment_deadlines_due(store, DUE - timedelta(microseconds=1)) == ()
    assert payment_deadlines_due(store, DUE) == (PaymentDeadline(order.id, DUE),)


def test_due_deadlines_come_earliest_first_whatever_the_time_zone_asked_in(
    store: ViewStore,
) -> None:
    feed = Feeder(store, PaymentDeadlines)
    later = confirmed(DUE + timedelta(hours=1), "customer-1")
    earlier = confirmed(DUE, "customer-2")
    feed(events_of(later, earlier))
    new_york_winter = timezone(timedelta(hours=-5))

    due = payment_deadlines_due(store, DUE.astimezone(new_york_winter))
    all_due = payment_deadlines_due(store, LONG_AFTER.astimezone(new_york_winter))

    assert [deadline.order_id for deadline in due] == [earlier.id]
    assert [deadline.order_id for deadline in all_due] == [earlier.id, later.id]
    assert all(deadline.due_at.tzinfo is UTC for deadline in all_due)


def test_an_order_confirmed_without_a_deadline_has_none(store: ViewStore) -> None:
    Feeder(store, PaymentDeadlines)(events_of(confirmed(None)))

    assert payment_deadlines_due(store, LONG_AFTER) == ()


def test_paying_cancelling_or_shipping_settles_the_deadline(
    store: ViewStore,
) -> None:
    feed = Feeder(store, PaymentDeadlines)
    paid, cancelled, shipped = confirmed(DUE), confirmed(DUE), confirmed(DUE)
    still_pending = confirmed(DUE, "customer-4")
    feed(events_of(paid, cancelled, shipped, still_pending))

    paid.pay()
    cancelled.cancel("changed mind")
    shipped.pay()
    shipped.ship()
    feed(events_of(paid, cancelled, shipped))

    assert [deadline.order_id for deadline in payment_deadlines_due(store, DUE)] == [
        still_pending.id
    ]
