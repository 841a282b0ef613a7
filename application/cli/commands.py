"""What each ``eventshop`` command does, once ``application.cli`` has parsed
its arguments: ``COMMANDS`` holds them by the name the parser gives, from one
module per command group (``demo_commands``, ``subscriber_commands``,
``relay_commands``, ``rebuild_commands``, ``dead_letter_commands``,
``audit_commands``, ``customer_commands``, ``db_commands``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from rich.console import Console

from application.cli.audit_commands import (
    audit_events_command,
    audit_history_command,
    audit_state_command,
    audit_stock_command,
    audit_trace_command,
    audit_verify_command,
)
from application.cli.customer_commands import customers_forget_command
from application.cli.db_commands import db_roles_command
from application.cli.dead_letter_commands import (
    dead_letters_discard_command,
    dead_letters_list_command,
    dead_letters_retry_command,
)
from application.cli.demo_commands import demo_command
from application.cli.rebuild_commands import rebuild_command
from application.cli.relay_commands import relay_command
from application.cli.subscriber_commands import (
    status_command,
    topology_command,
    worker_command,
)

Handler = Callable[[argparse.Namespace, Console], int]

COMMANDS: Mapping[str, Handler] = {
    "demo": demo_command,
    "worker": worker_command,
    "relay": relay_command,
    "status": status_command,
    "topology": topology_command,
    "rebuild": rebuild_command,
    "dead-letters list": dead_letters_list_command,
    "dead-letters retry": dead_letters_retry_command,
    "dead-letters discard": dead_letters_discard_command,
    "customers forget": customers_forget_command,
    "audit verify": audit_verify_command,
    "audit history": audit_history_command,
    "audit events": audit_events_command,
    "audit trace": audit_trace_command,
    "audit stock": audit_stock_command,
    "audit state": audit_state_command,
    "db roles": db_roles_command,
}
