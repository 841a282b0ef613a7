"""Audit queries over the audit index: history of an aggregate, events by type,
time, actor, SKU and customer (combinable, paged, either direction), the trace
of one user action across every service, and the stock movements of a SKU.

Every value a user supplies reaches the database as a bound parameter. Pages
are keyset-paged on (time, aggregate id, version), which every index of the
audit index ends with, so a first page costs the same whatever the log's size.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Select, and_, literal, or_, select, union_all

from domain.errors import InvalidInputError
from domain.inventory import InventoryItem
from domain.values import inventory_item_id, parse_moment, parse_whole_number
from projections.audit.indexes import AUDIT_INDEXES, AuditIndex, event_type_name
from projections.store import ViewStore
from projections.store.engine import as_utc

MAX_PAGE = 1_000

# How one unit of each stock event moves (on hand, reserved).
_STOCK_EFFECTS: dict[str, tuple[int, int]] = {
    event_type_name(InventoryItem.StockReceived): (1, 0),
    event_type_name(InventoryItem.StockAdjusted): (1, 0),
    event_type_name(InventoryItem.StockReserved): (0, 1),
    event_type_name(InventoryItem.ReservationReleased): (0, -1),
    event_type_name(InventoryItem.ReservationCommitted): (-1, -1),
}


@dataclass(frozen=True)
class AuditEvent:
    service: str
    aggregate_id: UUID
    version: int
    event_type: str
    occurred_at: datetime
    actor: str
    correlation_id: UUID | None
    causation_id: str | None
    customer_id: str | None
    payload: dict[str, Any] = field(hash=False, compare=True)

    @property
    def event_id(self) -> str:
        """Matches the causation ids of the events this one caused."""
        return f"{self.aggregate_id}:{self.version}"


@dataclass(frozen=True)
class EventFilter:
    """What to look for; every field left empty matches everything."""

    services: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    sku: str | None = None
    customer_id: str | None = None


@dataclass(frozen=True)
class Page:
    events: tuple[AuditEvent, ...]
    next_cursor: str | None
    """Pass back as ``cursor`` for the next page; None after the last one."""


@dataclass(frozen=True)
class TraceNode:
    event: AuditEvent
    children: tuple[TraceNode, ...]


@dataclass(frozen=True)
class StockMovement:
    event: AuditEvent
    movement: str
    quantity: int
    on_hand: int
    reserved: int
    order_id: UUID | None

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


def history(
    store: ViewStore, service: str, aggregate_id: UUID
) -> tuple[AuditEvent, ...]:
    """Every indexed event of one aggregate, oldest first."""
    index = _index(service)
    events = store.registry.active_tables(index)[index.events]
    query = (
        select(events)
        .where(events.c.aggregate_id == aggregate_id)
        .order_by(events.c.version)
    )
    with store.engine.connect() as connection:
        return tuple(_row_event(index, row) for row in connection.execute(query))


def find_events(
    store: ViewStore,
    wanted: EventFilter,
    *,
    newest_first: bool = True,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """One page of the events that match, across the services asked for."""
    limit = parse_whole_number(limit, "limit", 1, MAX_PAGE)
    after = _decode_cursor(cursor) if cursor else None
    indexes = [
        index
        for index in AUDIT_INDEXES
        if not wanted.services
        or index.follows.lower() in {name.lower() for name in wanted.services}
    ]
    parts = [
        _matching(
            store,
            index,
            wanted,
            newest_first=newest_first,
            limit=limit + 1,
            after=after,
        ).subquery()
        for index in indexes
    ]
    if not parts:
        return Page((), None)
    merged = union_all(*(select(part) for part in parts)).subquery()
    key = (merged.c.occurred_at, merged.c.aggregate_id, merged.c.version)
    query = (
        select(merged)
        .order_by(*(column.desc() if newest_first else column.asc() for column in key))
        .limit(limit + 1)
    )
    with store.engine.connect() as connection:
        rows = connection.execute(query).all()
    events = tuple(_row_event(_index(row.service), row) for row in rows[:limit])
    next_cursor = _encode_cursor(events[-1]) if len(rows) > limit else None
    return Page(events, next_cursor)


def trace(store: ViewStore, correlation_id: UUID) -> tuple[TraceNode, ...]:
    """Everything one user action caused, across services, as a forest in causal
    order: each root is a command's event, each child a reaction to its parent."""
    events: list[AuditEvent] = []
    with store.engine.connect() as connection:
        for index in AUDIT_INDEXES:
            table = store.registry.active_tables(index)[index.events]
            query = select(table).where(table.c.correlation_id == correlation_id)
            events += [_row_event(index, row) for row in connection.execute(query)]
    events.sort(
        key=lambda event: (event.occurred_at, str(event.aggregate_id), event.version)
    )
    by_cause: dict[str | None, list[AuditEvent]] = {}
    known = {event.event_id for event in events}
    for event in events:
        cause = event.causation_id if event.causation_id in known else None
        by_cause.setdefault(cause, []).append(event)

    def grow(event: AuditEvent) -> TraceNode:
        return TraceNode(
            event, tuple(grow(child) for child in by_cause.get(event.event_id, []))
        )

    return tuple(grow(root) for root in by_cause.get(None, []))


def stock_movements(store: ViewStore, sku: str) -> tuple[StockMovement, ...]:
    """Every change to a SKU's stock, oldest first, with the running balance
    and the order or person behind it."""
    on_hand = reserved = 0
    movements = []
    for event in history(store, "Inventory", inventory_item_id(sku)):
        payload = event.payload
        quantity = int(payload.get("quantity", payload.get("delta", 0)))
        on_hand_per_unit, reserved_per_unit = _STOCK_EFFECTS.get(
            event.event_type, (0, 0)
        )
        on_hand += on_hand_per_unit * quantity
        reserved += reserved_per_unit * quantity
        order = payload.get("order_id")
        movements.append(
            StockMovement(
                event=event,
                movement=event.event_type.rpartition(".")[2],
                quantity=quantity,
                on_hand=on_hand,
                reserved=reserved,
                order_id=UUID(order) if order else None,
            )
        )
    return tuple(movements)


# -- building blocks ---------------------------------------------------------


def _index(service: str) -> type[AuditIndex]:
    for index in AUDIT_INDEXES:
        if index.follows.lower() == service.lower():
            return index
    known = ", ".join(index.follows for index in AUDIT_INDEXES)
    raise LookupError(f"no service named {service!r} (known: {known})")


def _matching(
    store: ViewStore,
    index: type[AuditIndex],
    wanted: EventFilter,
    *,
    newest_first: bool,
    limit: int,
    after: tuple[datetime, UUID, int] | None,
) -> Select[Any]:
    tables = store.registry.active_tables(index)
    events = tables[index.events]
    query = select(events, _literal_service(index))
    # By SKU, the SKU table's index gives the order; join back for the rows.
    if wanted.sku is not None:
        skus = tables[index.event_skus]
        query = query.join(
            skus,
            and_(
                skus.c.aggregate_id == events.c.aggregate_id,
                skus.c.version == events.c.version,
            ),
        ).where(skus.c.sku == wanted.sku)
        key = (skus.c.occurred_at, skus.c.aggregate_id, skus.c.version)
    else:
        key = (events.c.occurred_at, events.c.aggregate_id, events.c.version)
    conditions: list[ColumnElement[bool]] = []
    if wanted.event_types:
        conditions.append(events.c.event_type.in_(wanted.event_types))
    # Times are stored in UTC; SQLite compares them as text, so bounds must be
    # in UTC too whatever zone the caller gave them in.
    if wanted.since is not None:
        conditions.append(events.c.occurred_at >= parse_moment(wanted.since, "since"))
    if wanted.until is not None:
        conditions.append(events.c.occurred_at < parse_moment(wanted.until, "until"))
    if wanted.actor is not None:
        conditions.append(events.c.actor == wanted.actor)
    if wanted.customer_id is not None:
        conditions.append(events.c.customer_id == wanted.customer_id)
    if after is not None:
        at, last_id, last_version = after
        conditions.append(
            _beyond(
                key, (parse_moment(at, "cursor"), last_id, last_version), newest_first
            )
        )
    if conditions:
        query = query.where(*conditions)
    return query.order_by(
        *(column.desc() if newest_first else column.asc() for column in key)
    ).limit(limit)


def _literal_service(index: type[AuditIndex]) -> Any:
    return literal(index.follows).label("service")


def _beyond(
    key: Sequence[Any], after: tuple[datetime, UUID, int], newest_first: bool
) -> ColumnElement[bool]:
    """Rows strictly past ``after`` in paging order, spelled out (not as a row
    value comparison) so that both engines use the index for it."""
    time, aggregate_id, version = key
    at, last_id, last_version = after
    if newest_first:
        return or_(
            time < at,
            and_(time == at, aggregate_id < last_id),
            and_(time == at, aggregate_id == last_id, version < last_version),
        )
    return or_(
        time > at,
        and_(time == at, aggregate_id > last_id),
        and_(time == at, aggregate_id == last_id, version > last_version),
    )


def _row_event(index: type[AuditIndex], row: Any) -> AuditEvent:
    return AuditEvent(
        service=index.follows,
        aggregate_id=row.aggregate_id,
        version=row.version,
        event_type=row.event_type,
        occurred_at=as_utc(row.occurred_at),
        actor=row.actor,
        correlation_id=row.correlation_id,
        causation_id=row.causation_id,
        customer_id=row.customer_id,
        payload=json.loads(row.payload),
    )


def _encode_cursor(event: AuditEvent) -> str:
    raw = json.dumps(
        [event.occurred_at.isoformat(), str(event.aggregate_id), event.version]
    )
    return base64.urlsafe_b64encode(raw.encode()).decode()


# Longer than any cursor this module gives out (about 110 characters).
MAX_CURSOR_LENGTH = 200


def _decode_cursor(cursor: object) -> tuple[datetime, UUID, int]:
    """The keyset position a cursor of :func:`_encode_cursor` holds; anything
    else, however crafted, is an ``InvalidInputError``."""

    def refused(problem: str) -> InvalidInputError:
        return InvalidInputError("cursor", cursor, problem)

    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_LENGTH:
        raise refused("not a cursor this query gave out")
    try:
        # The length bound above also bounds how deep JSON can nest, well
        # inside the recursion limit of the parser.
        decoded = json.loads(base64.urlsafe_b64decode(cursor))
    except (ValueError, TypeError):
        raise refused("not a cursor this query gave out") from None
    if (
        not isinstance(decoded, list)
        or len(decoded) != 3
        or not all(isinstance(part, str) for part in decoded[:2])
    ):
        raise refused("not a cursor this query gave out")
    at, aggregate_id, version = decoded
    try:
        moment = parse_moment(datetime.fromisoformat(at), "cursor")
        return moment, UUID(aggregate_id), parse_whole_number(version, "cursor", 1)
    except ValueError:
        raise refused("not a cursor this query gave out") from None
