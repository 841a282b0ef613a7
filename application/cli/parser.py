"""The ``eventshop`` command: its arguments, and running the command they name.

This module only parses: what it imports is light, so that ``eventshop
--help`` and a refused argument answer at once. The commands themselves, and
the storage drivers, services and rich they need, are in one module per
command group, gathered by ``application.cli.commands``, loaded once the
arguments are good.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection, Sequence

from application.cli.options import (
    SERVICE_NAMES,
    add_storage_options,
    int_between,
    moment,
    one_of,
    positive_int,
)
from application.config import Batching
from application.databases import ConfigurationError
from application.demo.limits import MAX_CUSTOMERS, MAX_THREADS
from domain.dead_letter import DeadLetterStatus
from domain.errors import ShopError


def _subscriber_names() -> Collection[str]:
    # Imported when a name is parsed: the hosting loads every runner.
    from application.subscribers.hosting import declared_subscribers

    return [spec.name for spec in declared_subscribers()]


def _read_model_names() -> Collection[str]:
    # Imported when a name is parsed: the read models load SQLAlchemy.
    from projections.read_models.catalog import READ_MODELS

    return [projection.name for projection in READ_MODELS]


def subscriber_name() -> Callable[[str], str]:
    """An argparse type: the name of a declared subscriber."""
    return one_of("subscriber", _subscriber_names)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventshop", description="An event-sourced shop."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo workload and summarise it")
    add_storage_options(demo)
    demo.add_argument(
        "--customers",
        type=int_between(1, MAX_CUSTOMERS),
        default=60,
        help=f"customers who visit the shop (1-{MAX_CUSTOMERS:,}; default 60)",
    )
    demo.add_argument(
        "--threads",
        type=int_between(1, MAX_THREADS),
        default=4,
        help=f"customers shopping at once (1-{MAX_THREADS}; default 4)",
    )
    demo.add_argument(
        "--seed",
        type=int_between(0, 2**63 - 1),
        default=None,
        help="makes the customers' choices repeatable",
    )
    demo.add_argument(
        "--subscribers",
        choices=["embedded", "workers"],
        default="embedded",
        help="run the read models and process managers in this process, or "
        "start one `eventshop worker` process per subscriber",
    )
    demo.set_defaults(handler="demo")

    worker = commands.add_parser(
        "worker",
        help="run subscribers in this process (each a standby while another "
        "instance of it runs)",
    )
    worker.add_argument(
        "names",
        nargs="+",
        type=subscriber_name(),
        help="subscribers, as `eventshop topology` lists them",
    )
    add_storage_options(worker)
    worker.add_argument(
        "--on-failure",
        choices=["stop", "park"],
        help="when a handler keeps failing on an event: halt before it, or park "
        "it as a dead letter and go on (default: stop for process managers, "
        "park for read models)",
    )
    worker.add_argument(
        "--batch-size",
        type=positive_int,
        help="the most events a subscriber handles in one transaction while it "
        f"catches up (default {Batching().max_events})",
    )
    worker.set_defaults(handler="worker")

    relay = commands.add_parser(
        "relay",
        help="publish a service's log to NATS JetStream, in order (a standby "
        "while another relay of that service runs)",
    )
    relay.add_argument(
        "service",
        type=str.lower,
        choices=[name.lower() for name in SERVICE_NAMES],
    )
    relay.add_argument(
        "--once",
        action="store_true",
        help="publish what the log holds now, then exit",
    )
    relay.add_argument(
        "--page-size",
        type=int_between(1, 10_000),
        default=500,
        help="events read from the log and published at a time (default 500)",
    )
    add_storage_options(relay)
    relay.set_defaults(handler="relay")

    status = commands.add_parser(
        "status", help="each subscriber's position, lag and state"
    )
    add_storage_options(status)
    status.set_defaults(handler="status")

    topology = commands.add_parser(
        "topology", help="which event types each subscriber handles"
    )
    topology.add_argument(
        "--mermaid", action="store_true", help="print a Mermaid flowchart"
    )
    add_storage_options(topology)
    topology.set_defaults(handler="topology")
    _add_rebuild_parser(commands)
    _add_dead_letters_parser(commands)
    _add_customers_parser(commands)
    _add_audit_query_parsers(_add_audit_parsers(commands))
    _add_db_parsers(commands)
    return parser


# -- db -----------------------------------------------------------------------------


def _add_db_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    db = commands.add_parser("db", help="set up the PostgreSQL database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    roles = db_commands.add_parser(
        "roles",
        help="print (and with --apply create) least-privilege roles: an owner, "
        "a writer for shops and workers, an auditor",
        description="Prints the SQL that makes three roles for the shop's "
        "schema: <prefix>_owner owns the schema and the event tables; "
        "<prefix>_writer (what shops and workers connect as) may read and add "
        "to the event tables, never change them; <prefix>_auditor may only "
        "read. With --apply, runs it as the administrator the URL names, "
        "creating the shop's tables on the way. Passwords are read from "
        "$EVENTSHOP_OWNER_PASSWORD, $EVENTSHOP_WRITER_PASSWORD and "
        "$EVENTSHOP_AUDITOR_PASSWORD and never printed.",
    )
    roles.add_argument(
        "--database-url",
        help="postgresql://admin@host/db?schema=name, a superuser's "
        "(default: $EVENTSHOP_DATABASE_URL)",
    )
    roles.add_argument(
        "--prefix",
        default="eventshop",
        help="the roles' names begin with it (default: eventshop)",
    )
    roles.add_argument(
        "--apply", action="store_true", help="create the roles, not only print them"
    )
    roles.set_defaults(handler="db roles")


# -- rebuild --------------------------------------------------------------------


def _add_rebuild_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    rebuild = commands.add_parser(
        "rebuild",
        help="rebuild a read model from the event log into new tables, "
        "compare, and switch readers over",
        description="Rebuilds into new tables while the current ones keep "
        "serving, compares both at the same log position, and switches readers "
        "over if they agree (or always, with --switch). Exits 1 when they differ "
        "and nothing was switched.",
    )
    which = rebuild.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "name",
        nargs="?",
        type=one_of("read model", _read_model_names),
        help="the read model (see `topology`)",
    )
    which.add_argument(
        "--all", action="store_true", help="every read model, one after the other"
    )
    mode = rebuild.add_mutually_exclusive_group()
    mode.add_argument(
        "--verify",
        dest="mode",
        action="store_const",
        const="verify",
        help="only compare and report the differences; never switch",
    )
    mode.add_argument(
        "--switch",
        dest="mode",
        action="store_const",
        const="switch",
        help="switch even if they differ (to roll out a changed read model)",
    )
    rebuild.set_defaults(mode="switch-if-equal", handler="rebuild")
    add_storage_options(rebuild)


# -- dead letters -----------------------------------------------------------------


def _add_dead_letters_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    dead_letters = commands.add_parser(
        "dead-letters",
        help="events subscribers gave up on and parked: list, retry, discard",
    )
    actions = dead_letters.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the dead letters, oldest first")
    listing.add_argument(
        "--subscriber",
        type=subscriber_name(),
        help="only this subscriber's",
    )
    listing.add_argument(
        "--status", choices=[status.value for status in DeadLetterStatus]
    )
    add_storage_options(listing)
    listing.set_defaults(handler="dead-letters list")
    retry = actions.add_parser(
        "retry",
        help="handle a parked event again (once the fault is fixed); "
        "it takes effect once, with the dead letter marked retried",
    )
    retry.add_argument("id", help="the dead letter's id, as `list` shows it")
    add_storage_options(retry)
    retry.set_defaults(handler="dead-letters retry")
    discard = actions.add_parser(
        "discard", help="give up on a parked event for good, saying why"
    )
    discard.add_argument("id", help="the dead letter's id, as `list` shows it")
    # No default here: the service's (``DeadLetters.discard``) is the one.
    discard.add_argument("--reason")
    add_storage_options(discard)
    discard.set_defaults(handler="dead-letters discard")


# -- customers --------------------------------------------------------------------


def _add_customers_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    customers = commands.add_parser("customers", help="what is kept of customers")
    actions = customers.add_subparsers(dest="action", required=True)
    forget = actions.add_parser(
        "forget",
        help="forget a customer: delete their key, so their name, e-mail and "
        "address read as [forgotten] wherever stored; refuse their new carts",
    )
    forget.add_argument("customer_id", help="the customer's id, as carts name it")
    forget.add_argument("--actor", help="who asks (recorded with the event)")
    add_storage_options(forget)
    forget.set_defaults(handler="customers forget")


# -- audit ------------------------------------------------------------------------


def _add_audit_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The ``audit`` command group; returns its subcommands, for more to join."""
    audit = commands.add_parser(
        "audit", help="check and read the history the event logs hold"
    )
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify",
        help="check each service's event log against its hash chain",
        description="Chains what is new in each log, then recomputes the hash "
        "chain over the stored events and reports the first position where the "
        "log no longer matches it (an event altered, removed or inserted), or "
        "that it is intact. Exits 1 if any log is not intact.",
    )
    verify.add_argument(
        "--service",
        type=str.lower,
        choices=[name.lower() for name in SERVICE_NAMES],
        help="only this service's log (default: all)",
    )
    add_storage_options(verify)
    verify.set_defaults(handler="audit verify")
    return audit_commands


def _add_audit_query_parsers(
    audit_commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    _audit_query(
        audit_commands,
        "history",
        "every event of one aggregate, with version, time and actor",
        "aggregate_id",
    )

    events = audit_commands.add_parser(
        "events", help="events by type, time, actor, SKU or customer, paged"
    )
    events.add_argument("--type", action="append", default=[], dest="event_types")
    events.add_argument("--service", action="append", default=[], dest="services")
    events.add_argument("--since", type=moment, help="ISO time with zone, inclusive")
    events.add_argument("--until", type=moment, help="ISO time with zone, exclusive")
    events.add_argument("--actor")
    events.add_argument("--sku")
    events.add_argument("--customer")
    events.add_argument("--limit", type=int, default=50)
    events.add_argument("--cursor", help="the next-page cursor a previous page gave")
    order = events.add_mutually_exclusive_group()
    order.add_argument("--oldest-first", action="store_true")
    order.add_argument("--newest-first", action="store_true", help="(the default)")
    _common(events, "audit events")

    _audit_query(
        audit_commands,
        "trace",
        "everything one user action caused, as a tree",
        "correlation_id",
    )
    _audit_query(
        audit_commands,
        "stock",
        "a SKU's stock movements with the running balance",
        "sku",
    )
    state = _audit_query(
        audit_commands,
        "state",
        "an aggregate as it was at a version or a time",
        "aggregate_id",
    )
    when = state.add_mutually_exclusive_group()
    when.add_argument("--version", type=int)
    when.add_argument("--at", type=moment, help="ISO time with zone")


def _audit_query(
    audit_commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    subject: str,
) -> argparse.ArgumentParser:
    """An audit query about one subject (an aggregate, a SKU, an action)."""
    parser = audit_commands.add_parser(name, help=help_text)
    parser.add_argument(subject)
    _common(parser, f"audit {name}")
    return parser


def _common(parser: argparse.ArgumentParser, handler: str) -> None:
    parser.add_argument(
        "--format", choices=["table", "jsonl", "csv"], default="table", dest="output"
    )
    add_storage_options(parser)
    parser.set_defaults(handler=handler)


REFUSED = 2
"""Exit status of a command refused: bad arguments, or a typed eventshop error
(what argparse exits with for bad arguments)."""

# Errors eventshop raises on purpose: each says all there is to say in its
# message, so a traceback would only bury it.
TYPED_ERRORS: tuple[type[Exception], ...] = (ShopError, ConfigurationError)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command and returns its exit status (for bad arguments too,
    rather than raising SystemExit, so that callers in Python get a status
    either way). A typed error is one line on stderr and status 2; anything
    else propagates, with its traceback."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        # argparse has printed the usage and the error (or the help).
        return (
            0
            if exit_.code is None
            else exit_.code
            if isinstance(exit_.code, int)
            else REFUSED
        )
    # Loaded only now: the commands need the storage drivers, the services and
    # rich, which neither --help nor a refused argument does.
    from rich.console import Console

    from application.cli.commands import COMMANDS

    try:
        return COMMANDS[args.handler](args, Console())
    except TYPED_ERRORS as error:
        print(f"eventshop: error: {one_line(error)}", file=sys.stderr)
        return REFUSED


def one_line(error: BaseException) -> str:
    """The error's message on one line (a server's reason may span several)."""
    return " ".join(str(error).split()) or type(error).__name__
