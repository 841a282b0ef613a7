"""The audit index: one row per stored event of every aggregate, with who, when,
why and what, indexed for the audit queries (``projections.audit.queries``).

It is a projection per service (the machinery follows one log per projection),
all with the same shape, so it is rebuildable like any read model. Besides each
event's own row it keeps, per aggregate, the customer or SKU it concerns, so an
event that does not repeat them (``Order.Paid``) can still be found by them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, AggregateCreated, CanMutateAggregate
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
)

from domain.allocation import Allocation
from domain.cart import Cart
from domain.command_receipt import CommandReceipt
from domain.customer import CustomerErasure
from domain.dead_letter import DeadLetter
from domain.inventory import InventoryItem
from domain.metadata import METADATA_KEY, metadata_of
from domain.order import Order
from domain.values import DeliveryDetails
from projections.batching.changes import Changes
from projections.read_model import ReadModel, new_metadata

# Attributes every event has, shown as columns rather than in the payload.
_ENVELOPE = frozenset(
    {"originator_id", "originator_version", "timestamp", METADATA_KEY}
)


def _define_tables(metadata: MetaData, prefix: str) -> None:
    Table(
        f"{prefix}_events",
        metadata,
        Column("aggregate_id", Uuid, nullable=False),
        Column("version", Integer, nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("actor", String(200), nullable=False),
        Column("correlation_id", Uuid, nullable=True),
        Column("causation_id", String(100), nullable=True),
        Column("customer_id", String(200), nullable=True),
        Column("payload", Text, nullable=False),
        PrimaryKeyConstraint("aggregate_id", "version"),
        # One index per way of asking; each ends in the paging order, so a first
        # page is an index range scan however large the log.
        Index(None, "occurred_at", "aggregate_id", "version"),
        Index(None, "event_type", "occurred_at", "aggregate_id", "version"),
        Index(None, "actor", "occurred_at", "aggregate_id", "version"),
        Index(None, "customer_id", "occurred_at", "aggregate_id", "version"),
        Index(None, "correlation_id"),
    )
    Table(
        f"{prefix}_event_skus",
        metadata,
        Column("sku", String(64), nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("aggregate_id", Uuid, nullable=False),
        Column("version", Integer, nullable=False),
        PrimaryKeyConstraint("sku", "aggregate_id", "version"),
        Index(None, "sku", "occurred_at", "aggregate_id", "version"),
    )
    # What each aggregate is about, said once when it was created: the customer
    # (carts, orders) and the SKUs (items, orders, allocations).
    Table(
        f"{prefix}_subjects",
        metadata,
        Column("aggregate_id", Uuid, nullable=False),
        Column("customer_id", String(200), nullable=True),
        Column("sku", String(64), nullable=True),
        Index(None, "aggregate_id"),
    )


def event_type_name(event_class: type) -> str:
    """``Cart.ItemAdded`` for the class nested as ``Cart.ItemAdded``."""
    return event_class.__qualname__


def _event_classes(*aggregates: type[Aggregate]) -> list[type]:
    return [
        member
        for aggregate in aggregates
        for member in vars(aggregate).values()
        if isinstance(member, type) and issubclass(member, CanMutateAggregate)
    ]


def payload_json(event: object) -> str:
    """The event's own attributes as JSON (money and ids as strings)."""
    payload = {
        name: value
        for name, value in vars(event).items()
        if name not in _ENVELOPE and not name.startswith("originator_topic")
    }
    return _PAYLOAD_ENCODER.encode(payload)


PERSONAL_DATA_WITHHELD = "[personal data withheld]"
"""What the audit shows for a customer's name, e-mail and address."""


def _json_default(value: Any) -> Any:
    if isinstance(value, DeliveryDetails):
        # The index is a table in clear that a forget does not revisit: the
        # personal fields never enter it, only the pseudonymous customer id.
        return {"customer_id": value.customer_id, "personal": PERSONAL_DATA_WITHHELD}
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        # One level: the encoder comes back here for what the fields hold.
        return {name: getattr(value, name) for name in _field_names(type(value))}
    raise TypeError(f"cannot show {type(value).__name__} in an audit payload")


@cache
def _field_names(dataclass: type) -> tuple[str, ...]:
    return tuple(field.name for field in fields(dataclass))


_PAYLOAD_ENCODER = json.JSONEncoder(default=_json_default, sort_keys=True)


def skus_named(event: object) -> set[str]:
    """The SKUs an event's own attributes mention."""
    skus: set[str] = set()
    sku = getattr(event, "sku", None)
    if isinstance(sku, str):
        skus.add(sku)
    for line in getattr(event, "lines", None) or ():
        skus.add(line.sku)
    skus.update(getattr(event, "short_skus", None) or ())
    return skus


class AuditIndex(ReadModel):
    """Base of the per-service audit index projections."""

    aggregates: ClassVar[tuple[type[Aggregate], ...]]
    # Template names of the three tables; each service's index has its own.
    events: ClassVar[str]
    event_skus: ClassVar[str]
    subjects: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "aggregates" in cls.__dict__:
            cls.events = f"{cls.name}_events"
            cls.event_skus = f"{cls.name}_event_skus"
            cls.subjects = f"{cls.name}_subjects"
            cls.metadata = new_metadata()
            _define_tables(cls.metadata, cls.name)
            cls.loads = {cls.subjects: "aggregate_id"}
            cls._handlers = {
                event_class: AuditIndex._index
                for event_class in _event_classes(*cls.aggregates)
            }

    def _index(self, changes: Changes, event: Any) -> None:
        subjects = changes[self.subjects]
        if isinstance(event, AggregateCreated):
            for sku in sorted(skus_named(event)):
                subjects.insert(
                    aggregate_id=event.originator_id, customer_id=None, sku=sku
                )
            customer_id = getattr(event, "customer_id", None)
            if customer_id is not None:
                subjects.insert(
                    aggregate_id=event.originator_id,
                    customer_id=customer_id,
                    sku=None,
                )
        about = subjects.where(aggregate_id=event.originator_id)
        customers = [
            row["customer_id"] for row in about if row["customer_id"] is not None
        ]
        metadata = metadata_of(event)
        changes[self.events].insert(
            aggregate_id=event.originator_id,
            version=event.originator_version,
            event_type=event_type_name(type(event)),
            occurred_at=event.timestamp,
            actor=metadata.actor if metadata else "unknown",
            correlation_id=metadata.correlation_id if metadata else None,
            causation_id=metadata.causation_id if metadata else None,
            customer_id=customers[0] if customers else None,
            payload=payload_json(event),
        )
        skus = skus_named(event) | {
            row["sku"] for row in about if row["sku"] is not None
        }
        event_skus = changes[self.event_skus]
        for sku in sorted(skus):
            event_skus.insert(
                sku=sku,
                occurred_at=event.timestamp,
                aggregate_id=event.originator_id,
                version=event.originator_version,
            )


class CartsAudit(AuditIndex):
    name = "audit_carts"
    follows = "Carts"
    aggregates = (Cart, CommandReceipt)


class OrdersAudit(AuditIndex):
    name = "audit_orders"
    follows = "Orders"
    aggregates = (Order, CustomerErasure, DeadLetter, CommandReceipt)


class InventoryAudit(AuditIndex):
    name = "audit_inventory"
    follows = "Inventory"
    aggregates = (InventoryItem, Allocation, DeadLetter, CommandReceipt)


AUDIT_INDEXES: tuple[type[AuditIndex], ...] = (CartsAudit, OrdersAudit, InventoryAudit)


def audit_index_for(service: str) -> type[AuditIndex]:
    for index in AUDIT_INDEXES:
        if index.follows.lower() == service.lower():
            return index
    raise LookupError(f"no audit index for service {service!r}")


def event_types() -> Iterator[str]:
    """Every event type the audit index knows, by name."""
    for index in AUDIT_INDEXES:
        yield from (event_type_name(kind) for kind in index.event_types())
