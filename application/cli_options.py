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
