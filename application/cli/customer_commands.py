"""``eventshop customers forget ID``: forget a customer (their key deleted, so
their personal data in the stored events reads as the forgotten marker)."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape

from application.cli.options import settings_from
from application.shop import Action, Shop


def customers_forget_command(args: argparse.Namespace, console: Console) -> int:
    action = Action() if args.actor is None else Action(actor=args.actor)
    with Shop(settings=settings_from(args), subscribers="workers") as shop:
        shop.forget_customer(args.customer_id, **action)
    # markup=False-like: a customer id is the user's text, not rich markup.
    console.print(
        f"forgot customer {escape(repr(args.customer_id))}: their key is deleted",
        highlight=False,
    )
    return 0
