"""What the audit queries return, rendered for ``eventshop audit``: rich
tables and trees for a terminal, records as JSON Lines or CSV for machines.
(The audit service itself, ``application.audit.service``, renders nothing.)"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal
from uuid import UUID

from rich.table import Table
from rich.tree import Tree

from projections.audit.queries import AuditEvent, StockMovement, TraceNode

COLUMNS = (
    "occurred_at",
    "service",
    "event_type",
    "aggregate_id",
    "version",
    "actor",
    "customer_id",
    "correlation_id",
    "causation_id",
    "payload",
)


def event_record(event: AuditEvent) -> dict[str, Any]:
    return {
        "occurred_at": event.occurred_at.isoformat(),
        "service": event.service,
        "event_type": event.event_type,
        "aggregate_id": str(event.aggregate_id),
        "version": event.version,
        "actor": event.actor,
        "customer_id": event.customer_id,
        "correlation_id": str(event.correlation_id) if event.correlation_id else None,
        "causation_id": event.causation_id,
        "payload": event.payload,
    }


def as_jsonl(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    for record in records:
        yield json.dumps(record, sort_keys=True, default=str)


def as_csv(records: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for record in records:
        writer.writerow(
            {
                key: json.dumps(value, sort_keys=True)
                if isinstance(value, dict)
                else value
                for key, value in record.items()
            }
        )
    return buffer.getvalue()


def events_table(title: str, events: Sequence[AuditEvent]) -> Table:
    table = Table(title=title)
    for column in (
        "time (UTC)",
        "service",
        "event",
        "aggregate",
        "v",
        "actor",
        "payload",
    ):
        table.add_column(column, overflow="fold")
    for event in events:
        table.add_row(
            event.occurred_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            event.service,
            event.event_type,
            str(event.aggregate_id)[:8],
            str(event.version),
            event.actor,
            json.dumps(event.payload, sort_keys=True),
        )
    return table


def trace_tree(correlation_id: UUID, roots: Sequence[TraceNode]) -> Tree:
    tree = Tree(f"correlation {correlation_id}")

    def grow(branch: Tree, node: TraceNode) -> None:
        event = node.event
        child = branch.add(
            f"{event.occurred_at:%H:%M:%S.%f} {event.service} "
            f"[bold]{event.event_type}[/] by {event.actor} "
            f"({str(event.aggregate_id)[:8]} v{event.version})"
        )
        for grandchild in node.children:
            grow(child, grandchild)

    for root in roots:
        grow(tree, root)
    return tree


def trace_records(roots: Sequence[TraceNode]) -> Iterator[dict[str, Any]]:
    """The trace flattened in causal (depth-first) order, each with its depth."""

    def walk(node: TraceNode, depth: int) -> Iterator[dict[str, Any]]:
        yield {"depth": depth, **event_record(node.event)}
        for child in node.children:
            yield from walk(child, depth + 1)

    for root in roots:
        yield from walk(root, 0)


def movement_record(movement: StockMovement) -> dict[str, Any]:
    return {
        "occurred_at": movement.event.occurred_at.isoformat(),
        "movement": movement.movement,
        "quantity": movement.quantity,
        "on_hand": movement.on_hand,
        "reserved": movement.reserved,
        "available": movement.available,
        "order_id": str(movement.order_id) if movement.order_id else None,
        "actor": movement.event.actor,
    }


MOVEMENT_COLUMNS = (
    "occurred_at",
    "movement",
    "quantity",
    "on_hand",
    "reserved",
    "available",
    "order_id",
    "actor",
)


def movements_table(sku: str, movements: Sequence[StockMovement]) -> Table:
    table = Table(title=f"Stock movements of {sku}")
    for column in MOVEMENT_COLUMNS:
        justify: Literal["left", "right"] = (
            "right"
            if column in {"quantity", "on_hand", "reserved", "available"}
            else "left"
        )
        table.add_column(column, justify=justify)
    for movement in movements:
        record = movement_record(movement)
        table.add_row(
            *("" if record[c] is None else str(record[c]) for c in MOVEMENT_COLUMNS)
        )
    return table
