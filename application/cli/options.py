"""Options every storage-touching ``eventshop`` command shares, and argparse
types that refuse bad values before a command touches anything."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection
from datetime import datetime

from application.config import (
    ALL_SUBSCRIBERS,
    BROKER_FED_VARIABLE,
    NATS_URL_SCHEMES,
    NATS_URL_VARIABLE,
    STORAGE_PARTS,
    VIEWS,
    Settings,
    part_url_variable,
)
from application.service_names import SERVICE_NAMES

__all__ = [
    "DEFAULT_NATS_URL",
    "NATS_URL_VARIABLE",
    "SERVICE_NAMES",
    "add_storage_options",
    "int_between",
    "moment",
    "nats_url",
    "one_of",
    "positive_int",
    "settings_from",
]


def add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="postgresql://user@host/db?schema=name or sqlite:///folder "
        "(default: $EVENTSHOP_DATABASE_URL, else SQLite under ./eventshop-data)",
    )
    parser.add_argument("--data-dir", help="folder for the SQLite files")
    for part in STORAGE_PARTS:
        parser.add_argument(
            f"--{part.lower()}-database-url",
            metavar="URL",
            help=f"a database of its own for {_part_title(part)} "
            f"(default: ${part_url_variable(part)}, else --database-url)",
        )
    parser.add_argument(
        "--nats",
        type=nats_url,
        metavar="URL",
        help="the NATS server the relays publish to and the broker-fed "
        f"subscribers read (default: ${NATS_URL_VARIABLE}; the relay's: "
        f"{DEFAULT_NATS_URL})",
    )
    parser.add_argument(
        "--broker-fed",
        type=_names,
        metavar="NAMES",
        help="subscribers (comma-separated, or 'all') that read the service "
        "they follow from its stream on the broker rather than its log "
        f"(default: ${BROKER_FED_VARIABLE}, else none)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_url(
        args.database_url,
        data_dir=args.data_dir,
        part_urls={
            part: getattr(args, f"{part.lower()}_database_url")
            for part in STORAGE_PARTS
        },
        nats_url=args.nats,
        broker_fed=args.broker_fed,
    )


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or len(text) > 2000:
        raise argparse.ArgumentTypeError(
            f"{text[:80]!r} names no subscriber (comma-separated, or "
            f"{ALL_SUBSCRIBERS!r})"
        )
    return names


def _part_title(part: str) -> str:
    return "the views" if part == VIEWS else part


def int_between(least: int, most: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``least`` to ``most``."""

    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number"
            ) from None
        if not least <= number <= most:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not from {least:,} to {most:,}"
            )
        return number

    return parse


positive_int = int_between(1, 2**31 - 1)
"""An argparse type: a whole number of at least 1 (and below 2**31)."""


def one_of(kind: str, known: Callable[[], Collection[str]]) -> Callable[[str], str]:
    """An argparse type: one of the names ``known()`` gives of a ``kind`` of
    thing, asked for only when a value is parsed (the names come from modules
    that ``--help`` has no need to load)."""

    def parse(text: str) -> str:
        names = known()
        if text not in names:
            raise argparse.ArgumentTypeError(
                f"no {kind} named {text!r} (known: {', '.join(names)})"
            )
        return text

    return parse


DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


def nats_url(text: str) -> str:
    """An argparse type: the URL of a NATS server."""
    if not text.startswith(NATS_URL_SCHEMES) or len(text) > 2000:
        raise argparse.ArgumentTypeError(
            f"{text[:80]!r} is not a NATS URL (like {DEFAULT_NATS_URL})"
        )
    return text


def moment(text: str) -> datetime:
    """An argparse type: an ISO time with its zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO time (like 2026-01-31T12:00+00:00)"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone (add +00:00)")
    return moment
