"""``eventshop audit verify|history|events|trace|stock|state``: the logs checked
against their hash chains, and the audit queries as a readable table, JSON
Lines or CSV, once ``application.cli`` has parsed their arguments."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from rich.console import Console
from rich.table import Table

from application.audit.chain_verification import verify_chains
from application.bootstrap import ShopParts, bootstrap
from application.cli.audit_rendering import (
    COLUMNS,
    MOVEMENT_COLUMNS,
    as_csv,
    as_jsonl,
    event_record,
    events_table,
    movement_record,
    movements_table,
    trace_records,
    trace_tree,
)
from application.cli.options import settings_from
from projections.audit.queries import AuditEvent


def audit_verify_command(args: argparse.Namespace, console: Console) -> int:
    settings = settings_from(args)
    verdicts = verify_chains(settings, None if args.service is None else [args.service])
    table = Table(title=f"Event log hash chains ({settings.describe()})")
    table.add_column("service")
    table.add_column("verdict")
    for column in ("position", "events checked", "chained up to", "unchained"):
        table.add_column(column, justify="right")
    table.add_column("head link (SHA-256)", no_wrap=True)
    for service, verdict in verdicts.items():
        table.add_row(
            service,
            "[green]intact[/]" if verdict.intact else f"[red]{verdict.kind}[/]",
            "-" if verdict.position is None else str(verdict.position),
            str(verdict.checked),
            str(verdict.head),
            str(verdict.unrecorded),
            verdict.head_link.hex(),
        )
    console.print(table)
    for service, verdict in verdicts.items():
        if not verdict.intact:
            console.print(f"[red]{service}:[/] {verdict.describe()}")
    return 0 if all(verdict.intact for verdict in verdicts.values()) else 1


def _shop_parts(args: argparse.Namespace) -> ShopParts:
    # Reads only: the audit index is kept up to date by whoever runs the shop.
    return bootstrap(settings_from(args), hosting="workers")


def audit_history_command(args: argparse.Namespace, console: Console) -> int:
    with _shop_parts(args) as parts:
        events = parts.audit.history(args.aggregate_id)
    _print_events(console, args.output, f"History of {args.aggregate_id}", events)
    return 0 if events else 1


def audit_events_command(args: argparse.Namespace, console: Console) -> int:
    with _shop_parts(args) as parts:
        page = parts.audit.events(
            event_types=args.event_types,
            services=args.services,
            since=args.since,
            until=args.until,
            actor=args.actor,
            sku=args.sku,
            customer_id=args.customer,
            newest_first=not args.oldest_first,
            limit=args.limit,
            cursor=args.cursor,
        )
    _print_events(console, args.output, "Events", page.events)
    if page.next_cursor and args.output == "table":
        console.print(f"next page: --cursor {page.next_cursor}")
    return 0


def audit_trace_command(args: argparse.Namespace, console: Console) -> int:
    with _shop_parts(args) as parts:
        roots = parts.audit.trace(args.correlation_id)
    if args.output == "table":
        console.print(trace_tree(UUID(str(args.correlation_id)), roots))
    else:
        records = list(trace_records(roots))
        _print_records(args.output, records, ("depth", *COLUMNS))
    return 0 if roots else 1


def audit_stock_command(args: argparse.Namespace, console: Console) -> int:
    with _shop_parts(args) as parts:
        movements = parts.audit.stock_movements(args.sku)
    if args.output == "table":
        console.print(movements_table(args.sku, movements))
    else:
        records = [movement_record(movement) for movement in movements]
        _print_records(args.output, records, MOVEMENT_COLUMNS)
    return 0 if movements else 1


def audit_state_command(args: argparse.Namespace, console: Console) -> int:
    with _shop_parts(args) as parts:
        state = parts.audit.state(args.aggregate_id, version=args.version, at=args.at)
    record = {
        "service": state.service,
        "aggregate_id": str(state.aggregate_id),
        "aggregate_type": state.aggregate_type,
        "version": state.version,
        "as_of": state.as_of.isoformat(),
        "state": state.state,
    }
    if args.output == "table":
        console.print(
            f"[bold]{state.aggregate_type}[/] {state.aggregate_id} in {state.service}, "
            f"version {state.version}, as of {state.as_of.isoformat()}"
        )
        for name, value in state.state.items():
            console.print(f"  {name}: {json.dumps(value, default=str)}")
    else:
        _print_records(args.output, [record], tuple(record))
    return 0


def _print_events(
    console: Console, output: str, title: str, events: Sequence[AuditEvent]
) -> None:
    if output == "table":
        console.print(events_table(title, events))
        return
    _print_records(output, [event_record(event) for event in events], COLUMNS)


def _print_records(
    output: str, records: Sequence[dict[str, Any]], columns: Sequence[str]
) -> None:
    # Plain print, not rich: machine-readable output must not be wrapped.
    if output == "jsonl":
        for line in as_jsonl(records):
            print(line)
    else:
        print(as_csv(records, columns), end="")
