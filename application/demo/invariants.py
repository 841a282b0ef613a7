"""The checks that say a shop's history is sound, read from the event store itself
(not from the views, which one of the checks compares to a rebuild).

They cover the whole store, not one caller's share of it: every registered SKU,
every checkout and every allocation ever recorded, so that they hold however
many runs, shops or workers wrote to it. Used by ``eventshop demo`` after its
workload and by the saga and fault tests.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.utils import get_topic

from application.persistence.paging import notification_pages
from application.services.loading import AggregateLoader
from application.shop import Shop
from domain.allocation import Allocation, AllocationStatus, allocation_id
from domain.cart import Cart
from domain.inventory import InventoryItem
from domain.order import Order, OrderStatus

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

# Notifications read from a log at a time.
PAGE_SIZE = 1_000


@dataclass(frozen=True)
class InvariantCheck:
    name: str
    ok: bool
    detail: str


def check_invariants(shop: Shop, *, compare_views: bool = True) -> list[InvariantCheck]:
    """Checks, once the saga has settled (call ``shop.wait_until_processed()``
    first), that stock is conserved, every checkout in the store was resolved
    exactly once and (optionally) every view equals a rebuild from the log."""
    checks = [_stock_conserved(shop), _checkouts_resolved_once(shop)]
    if compare_views:
        checks.append(_views_equal_rebuild(shop))
    return checks


def logged(service: Application[UUID], *kinds: type[T]) -> Iterator[T]:
    """Every event of these kinds in the service's log, oldest first."""
    topics = [get_topic(kind) for kind in kinds]
    for page in notification_pages(service.recorder, PAGE_SIZE, topics=topics):
        for notification in page:
            event = service.mapper.to_domain_event(notification)
            assert isinstance(event, kinds), f"{notification.topic} is not {kinds}"
            yield event


def _loaded(
    service: Application[UUID], ids: Iterable[UUID], kind: type[T]
) -> dict[UUID, T]:
    """The aggregates of ``kind`` among ``ids``, as stored now."""
    loaded = AggregateLoader(service).load(list(ids))
    return {key: value for key, value in loaded.items() if isinstance(value, kind)}


def _stock_conserved(shop: Shop) -> InvariantCheck:
    """For every SKU: received + adjustments - committed = on hand; its
    reservations are exactly the lines of the allocations that hold stock;
    0 <= reserved <= on hand."""
    moved: defaultdict[UUID, Counter[str]] = defaultdict(Counter)
    for event in logged(
        shop.inventory,
        InventoryItem.StockReceived,
        InventoryItem.StockAdjusted,
        InventoryItem.ReservationCommitted,
    ):
        if isinstance(event, InventoryItem.StockReceived):
            moved[event.originator_id]["received"] += event.quantity
        elif isinstance(event, InventoryItem.StockAdjusted):
            moved[event.originator_id]["adjusted"] += event.delta
        elif isinstance(event, InventoryItem.ReservationCommitted):
            moved[event.originator_id]["committed"] += event.quantity
    requested = [
        event.originator_id for event in logged(shop.inventory, Allocation.Requested)
    ]
    held: defaultdict[str, dict[UUID, int]] = defaultdict(dict)
    for allocation in _loaded(shop.inventory, requested, Allocation).values():
        if allocation.status == AllocationStatus.RESERVED:
            for line in allocation.lines:
                by_order = held[line.sku]
                by_order[allocation.order_id] = (
                    by_order.get(allocation.order_id, 0) + line.quantity
                )
    registered = (
        event.originator_id
        for event in logged(shop.inventory, InventoryItem.Registered)
    )
    items = _loaded(shop.inventory, registered, InventoryItem)
    problems = _stock_problems(items, moved, held)
    return InvariantCheck(
        "stock conserved",
        not problems,
        "; ".join(problems[:5]) or f"{len(items)} SKUs balance",
    )


def _stock_problems(
    items: Mapping[UUID, InventoryItem],
    moved: Mapping[UUID, Counter[str]],
    held: Mapping[str, Mapping[UUID, int]],
) -> list[str]:
    problems = []
    for item_id, item in items.items():
        movements = moved.get(item_id, Counter())
        expected_on_hand = (
            movements["received"] + movements["adjusted"] - movements["committed"]
        )
        sku = item.sku
        if item.on_hand != expected_on_hand:
            problems.append(f"{sku}: on hand {item.on_hand} != {expected_on_hand}")
        held_here = dict(held.get(sku, {}))
        if dict(item.reservations) != held_here:
            problems.append(
                f"{sku}: reservations {dict(item.reservations)} != held {held_here}"
            )
        if not 0 <= item.reserved <= item.on_hand:
            problems.append(f"{sku}: reserved {item.reserved} of {item.on_hand}")
    unknown = sorted(set(held) - {item.sku for item in items.values()})
    problems.extend(f"{sku}: held but never registered" for sku in unknown)
    return problems


def _checkouts_resolved_once(shop: Shop) -> InvariantCheck:
    """Each checked-out cart has exactly one order, placed once, settled, with
    an allocation that agrees with the order's status; no order without a
    checkout."""
    checkouts = Counter(event.order_id for event in logged(shop.carts, Cart.CheckedOut))
    placed = Counter(event.originator_id for event in logged(shop.orders, Order.Placed))
    orders = _loaded(shop.orders, list(checkouts), Order)
    allocations = _loaded(
        shop.inventory, [allocation_id(order_id) for order_id in checkouts], Allocation
    )
    problems = [
        f"order {order_id} placed without a checkout"
        for order_id in placed
        if order_id not in checkouts
    ]
    for order_id, times in checkouts.items():
        if times != 1 or placed[order_id] != 1:
            problems.append(
                f"order {order_id}: checked out {times} times, "
                f"placed {placed[order_id]} times"
            )
            continue
        problems.extend(_settlement_problems(order_id, orders, allocations))
    return InvariantCheck(
        "every checkout resolved exactly once",
        not problems,
        "; ".join(problems[:5]) or f"{len(checkouts)} checkouts",
    )


def _settlement_problems(
    order_id: UUID, orders: Mapping[UUID, Order], allocations: Mapping[UUID, Allocation]
) -> Iterator[str]:
    order = orders.get(order_id)
    if order is None:
        yield f"order {order_id} was placed but cannot be loaded"
        return
    if order.status not in SETTLED_ORDER_STATUSES:
        yield f"order {order_id} is still {order.status}"
        return
    allocation = allocations.get(allocation_id(order_id))
    found = None if allocation is None else allocation.status
    if found != ALLOCATION_FOR_ORDER[order.status]:
        yield f"order {order_id} is {order.status}, allocation {found}"


def _views_equal_rebuild(shop: Shop) -> InvariantCheck:
    reports = shop.rebuild("all", mode="verify")
    differing = [report.projection for report in reports if not report.agrees]
    return InvariantCheck(
        "views equal a rebuild",
        not differing,
        f"differ: {', '.join(differing)}" if differing else f"{len(reports)} views",
    )
