"""``eventshop dead-letters list|retry|discard``: the events subscribers have
parked, and what an operator does with them."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from application.bootstrap import bootstrap
from application.cli.options import settings_from
from application.subscribers.dead_letters import DEFAULT_DISCARD_REASON


def dead_letters_list_command(args: argparse.Namespace, console: Console) -> int:
    settings = settings_from(args)
    with bootstrap(settings, hosting="workers") as parts:
        letters = parts.dead_letters.list(
            subscriber=args.subscriber, status=args.status
        )
    table = Table(title=f"Dead letters ({settings.describe()})")
    # Whole, whatever the terminal's width: it is what `retry` takes.
    table.add_column("id", no_wrap=True, min_width=36)
    for column in ("subscriber", "service"):
        table.add_column(column)
    table.add_column("position", justify="right")
    for column in ("event", "status", "parked at", "error"):
        table.add_column(column)
    for letter in letters:
        table.add_row(
            str(letter.dead_letter_id),
            letter.subscriber,
            letter.service,
            str(letter.position),
            f"{letter.event_type} {letter.originator_id}:{letter.originator_version}",
            letter.status.value,
            f"{letter.parked_at:%Y-%m-%d %H:%M:%S}",
            letter.discard_reason if letter.discard_reason else letter.error,
        )
    console.print(table)
    return 0


def dead_letters_retry_command(args: argparse.Namespace, console: Console) -> int:
    with bootstrap(settings_from(args), hosting="workers") as parts:
        letter = parts.dead_letters.retry(args.id)
    console.print(
        f"[green]retried[/] {letter.event_type} at position {letter.position} "
        f"of {letter.service} for {letter.subscriber}"
    )
    return 0


def dead_letters_discard_command(args: argparse.Namespace, console: Console) -> int:
    with bootstrap(settings_from(args), hosting="workers") as parts:
        reason = DEFAULT_DISCARD_REASON if args.reason is None else args.reason
        letter = parts.dead_letters.discard(args.id, reason)
    console.print(
        f"discarded {letter.event_type} at position {letter.position} "
        f"of {letter.service} for {letter.subscriber}: {letter.discard_reason}"
    )
    return 0
