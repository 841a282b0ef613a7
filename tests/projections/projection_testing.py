"""Helpers for feeding domain events straight into projections, as a runner would."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate
from sqlalchemy import select

from domain.order import Order
from domain.values import Line, total_of
from projections.read_model import ReadModel
from projections.store import ViewStore
from projections.store.engine import sqlite_engine

TEA = "TEA-SENCHA"
MUG = "MUG-01"
POT = "POT-CAST-IRON"


def new_view_store(path: Path, *projections: type[ReadModel]) -> ViewStore:
    """A SQLite view store holding only the given projections' tables, which
    shows each of them needs no other's."""
    store = ViewStore(sqlite_engine(path), projections)
    store.create_schema()
    return store


class Feeder:
    """Applies events to one generation of a projection, one batch per call,
    moving its tracking position the way a runner does."""

    def __init__(
        self, store: ViewStore, projection: type[ReadModel], generation: int = 1
    ) -> None:
        self.store = store
        self.projection = projection
        self.generation = generation
        self.position: int | None = None

    def __call__(self, events: Iterable[object]) -> None:
        batch = list(events)
        new_position = (self.position or 0) + max(len(batch), 1)
        applied = self.store.positions.apply(
            self.projection,
            self.generation,
            batch,
            expected_position=self.position,
            new_position=new_position,
        )
        assert applied
        self.position = new_position


def events_of(*aggregates: Aggregate) -> list[object]:
    """The aggregates' new events, aggregate by aggregate."""
    return [event for aggregate in aggregates for event in aggregate.collect_events()]


def rows(
    store: ViewStore, projection: type[ReadModel], table: str
) -> list[dict[str, Any]]:
    """Every row of one of the active generation's tables, in primary-key order."""
    physical = store.registry.active_tables(projection)[table]
    with store.engine.connect() as connection:
        result = connection.execute(
            select(physical).order_by(*physical.primary_key.columns)
        )
        return [dict(row._mapping) for row in result]


def placed_order(
    customer_id: str, *lines: tuple[str, int, str], cart_id: UUID | None = None
) -> Order:
    """An order placed with these (sku, quantity, unit price) lines."""
    clean = [Line(sku, quantity, Decimal(price)) for sku, quantity, price in lines]
    return Order.place(cart_id or uuid4(), customer_id, clean, total_of(clean))


def shipped(order: Order) -> Order:
    """Takes a placed order through confirmation and payment to shipping."""
    order.confirm()
    order.pay()
    order.ship()
    return order


def newest_first(placed: Iterable[Order]) -> list[Order]:
    """The order views list orders in: latest placed first, ties by id."""
    by_id = sorted(placed, key=lambda order: order.id)
    return sorted(by_id, key=lambda order: order.placed_at, reverse=True)
