"""Options every storage-touching ``eventshop`` command shares."""

from __future__ import annotations

import argparse

from application.config import Settings


def add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="postgresql://user@host/db?schema=name or sqlite:///folder "
        "(default: $EVENTSHOP_DATABASE_URL, else SQLite under ./eventshop-data)",
    )
    parser.add_argument("--data-dir", help="folder for the SQLite files")


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_url(args.database_url, data_dir=args.data_dir)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not at least 1")
    return number
