"""The checks that say a shop's history is sound, read from the event store itself
(not from the views, which one of the checks compares to a rebuild).

Used by ``eventshop demo`` after its workload and by the saga tests.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

from application.shop import Shop
from domain.allocation import Allocation, AllocationStatus, allocation_id
from domain.inventory import InventoryItem
from domain.order import Order, OrderStatus
from domain.values import inventory_item_id, order_id_for_cart

T = TypeVar("T")

SETTLED_ORDER_STATUSES = frozenset(
    {
        OrderStatus.CONFIRMED,
        OrderStatus.PAID,
        OrderStatus.SHIPPED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
    }
)

# What each order status implies for its allocation once the saga has settled.
ALLOCATION_FOR_ORDER = {
    OrderStatus.CONFIRMED: AllocationStatus.RESERVED,
    OrderStatus.PAID: AllocationStatus.RESERVED,
    OrderStatus.SHIPPED: AllocationStatus.COMMITTED,
    OrderStatus.CANCELLED: AllocationStatus.RELEASED,
    OrderStatus.REJECTED: AllocationStatus.REFUSED,
}


@dataclass(frozen=True)
class InvariantCheck:
    name: str
    ok: bool
    detail: str


def check_invariants(
    shop: Shop,
    skus: Iterable[str],
    checked_out_carts: Iterable[UUID],
    *,
    compare_views: bool = True,
) -> list[InvariantCheck]:
    """Checks, once the saga has settled (call ``shop.wait_until_processed()``
    first), that stock is conserved, every checkout was resolved exactly once and
    (optionally) every view equals a rebuild from the log."""
    orders = [order_id_for_cart(cart_id) for cart_id in checked_out_carts]
    checks = [
        _stock_conserved(shop, list(skus), orders),
        _checkouts_resolved_once(shop, orders),
    ]
    if compare_views:
        checks.append(_views_equal_rebuild(shop))
    return checks


def _stock_conserved(shop: Shop, skus: list[str], orders: list[UUID]) -> InvariantCheck:
    """received + adjustments - committed = on hand; reserved = the lines of the
    orders whose allocations hold stock; nothing held for a settled-away order."""
    held: Counter[tuple[str, UUID]] = Counter()
    for order_id in orders:
        allocation = _get(shop.inventory, allocation_id(order_id), Allocation)
        if allocation is not None and allocation.status == AllocationStatus.RESERVED:
            for line in allocation.lines:
                held[line.sku, order_id] += line.quantity
    problems = []
    for sku in skus:
        moved: defaultdict[str, int] = defaultdict(int)
        for event in shop.inventory.events.get(inventory_item_id(sku)):
            if isinstance(event, InventoryItem.StockReceived):
                moved["received"] += event.quantity
            elif isinstance(event, InventoryItem.StockAdjusted):
                moved["adjusted"] += event.delta
            elif isinstance(event, InventoryItem.ReservationCommitted):
                moved["committed"] += event.quantity
        item = _get(shop.inventory, inventory_item_id(sku), InventoryItem)
        assert item is not None, f"{sku} is not registered"
        expected_on_hand = moved["received"] + moved["adjusted"] - moved["committed"]
        if item.on_hand != expected_on_hand:
            problems.append(f"{sku}: on hand {item.on_hand} != {expected_on_hand}")
        held_here = {order: qty for (s, order), qty in held.items() if s == sku}
        if dict(item.reservations) != held_here:
            problems.append(
                f"{sku}: reservations {dict(item.reservations)} != held {held_here}"
            )
        if not 0 <= item.reserved <= item.on_hand:
            problems.append(f"{sku}: reserved {item.reserved} of {item.on_hand}")
    return InvariantCheck(
        "stock conserved",
        not problems,
        "; ".join(problems) or f"{len(skus)} SKUs balance",
    )


def _checkouts_resolved_once(shop: Shop, orders: list[UUID]) -> InvariantCheck:
    """Each checked-out cart has exactly one order, placed once, settled, with an
    allocation that agrees with the order's status."""
    problems = []
    for order_id in orders:
        history = list(shop.orders.events.get(order_id))
        placed = sum(isinstance(event, Order.Placed) for event in history)
        if placed != 1:
            problems.append(f"order {order_id} placed {placed} times")
            continue
        order = _get(shop.orders, order_id, Order)
        assert order is not None
        if order.status not in SETTLED_ORDER_STATUSES:
            problems.append(f"order {order_id} is still {order.status}")
            continue
        allocation = _get(shop.inventory, allocation_id(order_id), Allocation)
        expected = ALLOCATION_FOR_ORDER[order.status]
        found = allocation.status if allocation else None
        if found != expected:
            problems.append(f"order {order_id} is {order.status}, allocation {found}")
    return InvariantCheck(
        "every checkout resolved exactly once",
        not problems,
        "; ".join(problems[:5]) or f"{len(orders)} checkouts",
    )


def _views_equal_rebuild(shop: Shop) -> InvariantCheck:
    reports = shop.rebuild("all", mode="verify")
    differing = [report.projection for report in reports if not report.agrees]
    return InvariantCheck(
        "views equal a rebuild",
        not differing,
        f"differ: {', '.join(differing)}" if differing else f"{len(reports)} views",
    )


def _get(service: Application[UUID], aggregate_id: UUID, kind: type[T]) -> T | None:
    try:
        aggregate: object = service.repository.get(aggregate_id)
    except AggregateNotFoundError:
        return None
    return aggregate if isinstance(aggregate, kind) else None
