"""``eventshop audit history|events|trace|stock|state``: the audit queries from the
command line, as a readable table, JSON Lines or CSV."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from rich.console import Console

from application.audit import (
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
from application.cli_options import add_storage_options, settings_from
from application.shop import Shop
from projections.audit_queries import AuditEvent


def add_audit_query_parsers(
    audit_commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    history = audit_commands.add_parser(
        "history", help="every event of one aggregate, with version, time and actor"
    )
    history.add_argument("aggregate_id")
    _common(history, audit_history_command)

    events = audit_commands.add_parser(
        "events", help="events by type, time, actor, SKU or customer, paged"
    )
    events.add_argument("--type", action="append", default=[], dest="event_types")
    events.add_argument("--service", action="append", default=[], dest="services")
    events.add_argument("--since", type=_moment, help="ISO time with zone, inclusive")
    events.add_argument("--until", type=_moment, help="ISO time with zone, exclusive")
    events.add_argument("--actor")
    events.add_argument("--sku")
    events.add_argument("--customer")
    events.add_argument("--limit", type=int, default=50)
    events.add_argument("--cursor", help="the next-page cursor a previous page gave")
    order = events.add_mutually_exclusive_group()
    order.add_argument("--oldest-first", action="store_true")
    order.add_argument("--newest-first", action="store_true", help="(the default)")
    _common(events, audit_events_command)

    trace = audit_commands.add_parser(
        "trace", help="everything one user action caused, as a tree"
    )
    trace.add_argument("correlation_id")
    _common(trace, audit_trace_command)

    stock = audit_commands.add_parser(
        "stock", help="a SKU's stock movements with the running balance"
    )
    stock.add_argument("sku")
    _common(stock, audit_stock_command)

    state = audit_commands.add_parser(
        "state", help="an aggregate as it was at a version or a time"
    )
    state.add_argument("aggregate_id")
    when = state.add_mutually_exclusive_group()
    when.add_argument("--version", type=int)
    when.add_argument("--at", type=_moment, help="ISO time with zone")
    _common(state, audit_state_command)


def _common(
    parser: argparse.ArgumentParser,
    handler: Callable[[argparse.Namespace, Console], int],
) -> None:
    parser.add_argument(
        "--format", choices=["table", "jsonl", "csv"], default="table", dest="output"
    )
    add_storage_options(parser)
    parser.set_defaults(handler=handler)


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO time (like 2026-01-31T12:00+00:00)"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone (add +00:00)")
    return moment


def _shop(args: argparse.Namespace) -> Shop:
    # Reads only: the audit index is kept up to date by whoever runs the shop.
    return Shop(settings=settings_from(args), subscribers="workers")


def audit_history_command(args: argparse.Namespace, console: Console) -> int:
    with _shop(args) as shop:
        events = shop.audit.history(args.aggregate_id)
    _print_events(console, args.output, f"History of {args.aggregate_id}", events)
    return 0 if events else 1


def audit_events_command(args: argparse.Namespace, console: Console) -> int:
    with _shop(args) as shop:
        page = shop.audit.events(
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
    with _shop(args) as shop:
        roots = shop.audit.trace(args.correlation_id)
    if args.output == "table":
        console.print(trace_tree(UUID(str(args.correlation_id)), roots))
    else:
        records = list(trace_records(roots))
        _print_records(args.output, records, ("depth", *COLUMNS))
    return 0 if roots else 1


def audit_stock_command(args: argparse.Namespace, console: Console) -> int:
    with _shop(args) as shop:
        movements = shop.audit.stock_movements(args.sku)
    if args.output == "table":
        console.print(movements_table(args.sku, movements))
    else:
        records = [movement_record(movement) for movement in movements]
        _print_records(args.output, records, MOVEMENT_COLUMNS)
    return 0 if movements else 1


def audit_state_command(args: argparse.Namespace, console: Console) -> int:
    with _shop(args) as shop:
        state = shop.audit.state(args.aggregate_id, version=args.version, at=args.at)
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
