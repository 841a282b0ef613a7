"""Property: whatever inventory commands ran, the views the live runner built
batch by batch hold exactly the rows a rebuild from the log builds."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from uuid import UUID

import hypothesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from sqlalchemy import select

from application.config import Settings
from application.shop import Shop
from domain import ShopError
from projections.read_models.stock import StockLevels

ORDER_IDS = [UUID(int=n) for n in (1, 2, 3)]


@dataclass(frozen=True)
class Step:
    command: str
    sku: int
    order: int
    quantity: int


steps = st.lists(
    st.builds(
        Step,
        command=st.sampled_from(["receive", "adjust", "reserve", "release", "commit"]),
        sku=st.integers(0, 1),
        order=st.integers(0, len(ORDER_IDS) - 1),
        # Small numbers, with zero and negatives, so refusals happen often.
        quantity=st.integers(-1, 8),
    ),
    max_size=25,
)


def run(shop: Shop, sku: str, step: Step) -> None:
    order_id = ORDER_IDS[step.order]
    if step.command == "receive":
        shop.receive_stock(sku, step.quantity)
    elif step.command == "adjust":
        shop.adjust_stock(sku, step.quantity, "count")
    elif step.command == "reserve":
        shop.inventory.reserve(sku, order_id, step.quantity)
    elif step.command == "release":
        shop.inventory.release(sku, order_id)
    else:
        shop.inventory.commit(sku, order_id)


@hypothesis.settings(
    max_examples=10,
    deadline=None,
    # One database per test; each example opens its own shop on it and uses
    # SKUs of its own, so examples do not see each other's stock.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(commands=steps)
def test_views_built_live_hold_what_a_rebuild_from_the_log_holds(
    settings: Settings, commands: list[Step]
) -> None:
    prefix = uuid.uuid4().hex[:8].upper()
    skus = [f"{prefix}-{n}" for n in range(2)]
    with Shop(settings=settings, subscribers="embedded") as shop:
        for sku in skus:
            shop.register_product(sku, f"product {sku}", "1.25")
        for step in commands:
            with contextlib.suppress(ShopError):
                run(shop, skus[step.sku], step)
        shop.wait_until_processed()

        [report] = shop.rebuild("stock", mode="verify")

        assert report.agrees, report
        assert not report.switched
        assert report.position == shop.log_heads()["Inventory"]
        # and both equal what the aggregates say
        with shop.views.registry.reading(StockLevels) as view:
            levels = view.table("stock_levels")
            seen = {
                row.sku: (row.on_hand, row.reserved, row.available)
                for row in view.connection.execute(
                    select(levels).where(levels.c.sku.in_(skus))
                )
            }
        for sku in skus:
            level = shop.get_stock(sku)
            assert seen[sku] == (level.on_hand, level.reserved, level.available)
