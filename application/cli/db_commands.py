"""``eventshop db roles``: the least-privilege PostgreSQL roles of a shop's
schema (``application.persistence.postgres.roles``), printed as SQL, and with
``--apply`` created, as the administrator the database URL names."""

from __future__ import annotations

import argparse

from rich.console import Console

from application.audit.chain_verification import open_chain_store
from application.bootstrap import open_stores
from application.config import STORAGE_PARTS, Settings
from application.databases import ConfigurationError, PostgresLocation
from application.persistence.postgres.roles import (
    PASSWORD_VARIABLES,
    RoleNames,
    RolePasswords,
    apply_plan,
    render,
    role_plan,
)


def db_roles_command(args: argparse.Namespace, console: Console) -> int:
    names = RoleNames.with_prefix(args.prefix)
    passwords = RolePasswords.from_environment()
    settings = Settings.from_url(args.database_url)
    admin = _one_postgres_schema(settings)
    plan = role_plan(names, admin, passwords, printable=True)
    console.print(
        f"-- roles of schema {admin.schema} in {admin.dbname}: owner {names.owner}, "
        f"writer {names.writer}, auditor {names.auditor}; passwords from "
        + ", ".join(f"${variable}" for variable in PASSWORD_VARIABLES.values())
        + " if set",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    console.print(render(plan), markup=False, highlight=False, soft_wrap=True)
    if not args.apply:
        return 0
    apply_plan(
        admin,
        role_plan(names, admin, passwords, printable=False),
        lambda: _set_up_shop(settings),
        secrets=passwords.secrets,
    )
    console.print(
        f"-- applied: shops and workers connect as {names.writer}, "
        f"`eventshop audit` as {names.auditor}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return 0


def _one_postgres_schema(settings: Settings) -> PostgresLocation:
    """Where the roles go: the one PostgreSQL schema every part of the shop
    is in (a part with a database of its own is set up by its own run)."""
    storage = settings.storage
    if storage.engine != "postgres" or storage.postgres is None:
        raise ConfigurationError(
            "database roles are a PostgreSQL matter: give a postgresql:// URL "
            "of an administrator (--database-url or $EVENTSHOP_DATABASE_URL)"
        )
    others = [part for part in STORAGE_PARTS if settings.storage_of(part) != storage]
    if others:
        raise ConfigurationError(
            f"{', '.join(others)} keep their data elsewhere: run `eventshop db "
            "roles` once per database, with its URL"
        )
    return storage.postgres


def _set_up_shop(settings: Settings) -> None:
    """Creates every table of the shop, as whoever ``settings`` connect as."""
    open_stores(settings).close()
    open_chain_store(settings).store.engine.dispose()
