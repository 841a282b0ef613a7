"""InventoryItem under random command sequences: invariants hold, replay agrees."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import InventoryItem, ShopError
from tests.domain.domain_testing import replay

ORDER_IDS = [UUID(int=n) for n in (1, 2, 3)]


@dataclass(frozen=True)
class Step:
    command: str
    order: int
    quantity: int


steps = st.lists(
    st.builds(
        Step,
        command=st.sampled_from(["receive", "adjust", "reserve", "release", "commit"]),
        order=st.integers(0, len(ORDER_IDS) - 1),
        # Small numbers, with zero and negatives, so refusals happen often.
        quantity=st.integers(-1, 12),
    ),
    max_size=40,
)


def run(item: InventoryItem, step: Step) -> None:
    order_id = ORDER_IDS[step.order]
    if step.command == "receive":
        item.receive(step.quantity)
    elif step.command == "adjust":
        item.adjust(step.quantity, "count")
    elif step.command == "reserve":
        item.reserve(order_id, step.quantity)
    elif step.command == "release":
        item.release(order_id)
    else:
        item.commit(order_id)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_random_commands_keep_the_invariants_and_replay_to_the_same_item(
    commands: list[Step],
) -> None:
    item = InventoryItem.register("APPLE", "Apple", Decimal("0.50"))
    history = list(item.collect_events())
    open_orders: set[UUID] = set()

    for step in commands:
        version = item.version
        try:
            run(item, step)
        except ShopError:
            assert item.version == version
            assert list(item.collect_events()) == []
        new_events = item.collect_events()
        assert len(new_events) <= 1
        history += new_events

        assert item.on_hand >= 0
        assert 0 <= item.reserved <= item.on_hand
        assert item.available == item.on_hand - item.reserved
        assert item.reserved == sum(item.reservations.values())
        assert all(quantity >= 1 for quantity in item.reservations.values())
        for new_event in new_events:
            # At most one reservation per order: never a second StockReserved
            # for an order until the first is released or committed.
            if isinstance(new_event, InventoryItem.StockReserved):
                assert new_event.order_id not in open_orders
                open_orders.add(new_event.order_id)
            elif isinstance(
                new_event,
                InventoryItem.ReservationReleased | InventoryItem.ReservationCommitted,
            ):
                open_orders.remove(new_event.order_id)
        assert open_orders == set(item.reservations)

    rebuilt = replay(InventoryItem, history)
    assert rebuilt == item
    assert (rebuilt.on_hand, rebuilt.reservations) == (item.on_hand, item.reservations)
