"""``eventshop db roles``: an owner of the event tables, a writer that shops,
workers and rebuilds run as and that may only add to the logs, and an auditor
that may only read; no password ever shown. PostgreSQL only: one schema and
three roles of this module's own (roles are cluster-wide: unique names,
dropped afterwards)."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from psycopg import sql

from application import Shop
from application.cli import main
from application.config import Settings
from application.persistence.postgres.roles import (
    PASSWORD_VARIABLES,
    RoleNames,
    scram_verifier,
)
from tests.conftest import (
    POSTGRES_URL,
    postgres_url,
    require_postgres,
    temporary_postgres_schema,
)

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class Roles:
    prefix: str
    names: RoleNames
    schema: str
    passwords: dict[str, str]
    # What applying printed and logged.
    output: str
    cart_id: str

    def url(self, kind: str) -> str:
        base = urlsplit(POSTGRES_URL)
        credentials = f"{quote(self.names.of(kind))}:{quote(self.passwords[kind])}"
        return (
            f"postgresql://{credentials}@{base.hostname}:{base.port or 5432}"
            f"{base.path}?schema={self.schema}"
        )

    def connect(self, kind: str) -> psycopg.Connection[tuple[Any, ...]]:
        base = urlsplit(POSTGRES_URL)
        return psycopg.connect(
            host=base.hostname,
            port=base.port or 5432,
            dbname=base.path.lstrip("/"),
            user=self.names.of(kind),
            password=self.passwords[kind],
            options=f"-c search_path={self.schema}",
            autocommit=True,
        )


@contextlib.contextmanager
def captured() -> Iterator[io.StringIO]:
    """Everything printed to stdout and stderr, and logged, in the block."""
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)
    try:
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            yield text
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def drop_roles(*roles: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        existing = {
            row[0]
            for row in conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(roles),)
            )
        }
        for role in roles:
            if role in existing:
                # Its grants and default privileges in this database go first.
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module")
def roles() -> Iterator[Roles]:
    """Roles applied to a fresh schema (passwords given), and a cart the
    writer's shop checked out in it."""
    prefix = f"es_roles_{uuid.uuid4().hex[:10]}"
    names = RoleNames.with_prefix(prefix)
    passwords = {kind: f"pw-{secrets.token_urlsafe(12)}" for kind in PASSWORD_VARIABLES}
    try:
        with temporary_postgres_schema() as schema, pytest.MonkeyPatch.context() as env:
            for kind, variable in PASSWORD_VARIABLES.items():
                env.setenv(variable, passwords[kind])
            with captured() as output:
                status = main(
                    [
                        "db",
                        "roles",
                        "--apply",
                        "--prefix",
                        prefix,
                        "--database-url",
                        postgres_url(schema),
                    ]
                )
            assert status == 0, output.getvalue()
            for variable in PASSWORD_VARIABLES.values():
                env.delenv(variable)
            applied = Roles(prefix, names, schema, passwords, output.getvalue(), "")
            writer = Settings.from_url(applied.url("writer"))
            with Shop(settings=writer, subscribers="threads") as shop:
                shop.register_product("TEA-SENCHA", "Sencha green tea", "6.20")
                shop.receive_stock("TEA-SENCHA", 10)
                cart_id = shop.open_cart("customer-42")
                shop.add_to_cart(cart_id, "TEA-SENCHA", 2)
                shop.checkout(cart_id)
                shop.wait_until_processed()
            yield Roles(
                prefix, names, schema, passwords, output.getvalue(), str(cart_id)
            )
    finally:
        drop_roles(names.owner, names.writer, names.auditor)


def owner_of(roles: Roles, table: str) -> str:
    with psycopg.connect(POSTGRES_URL) as conn:
        row = conn.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = %s",
            (roles.schema, table),
        ).fetchone()
    assert row is not None, table
    return str(row[0])


def test_the_owner_owns_the_logs_and_the_writer_the_views(roles: Roles) -> None:
    # given the roles applied
    # then the event tables (and the services' other tables) are the owner's,
    # the view store's the writer's
    for table in ("carts_events", "orders_events", "inventory_events"):
        assert owner_of(roles, table) == roles.names.owner
    assert owner_of(roles, "orders_tracking") == roles.names.owner
    for table in ("eventshop_tracking", "eventshop_generations", "eventshop_chain"):
        assert owner_of(roles, table) == roles.names.writer


def test_the_writer_holds_no_right_to_change_a_log(roles: Roles) -> None:
    # given the roles applied
    with psycopg.connect(POSTGRES_URL) as conn:
        for table in ("carts_events", "orders_events", "inventory_events"):
            qualified = f"{roles.schema}.{table}"
            rights = {
                right: conn.execute(
                    "SELECT has_table_privilege(%s, %s, %s)",
                    (roles.names.writer, qualified, right),
                ).fetchone()
                for right in ("SELECT", "INSERT", "UPDATE", "DELETE")
            }
            # then it may read and add, not change or delete
            assert rights == {
                "SELECT": (True,),
                "INSERT": (True,),
                "UPDATE": (False,),
                "DELETE": (False,),
            }
        # and neither it nor the auditor holds the owner's rights
        for member in (roles.names.writer, roles.names.auditor):
            held = conn.execute(
                "SELECT pg_has_role(%s, %s, 'USAGE')", (member, roles.names.owner)
            ).fetchone()
            assert held == (False,)


def test_the_writer_adds_to_and_reads_the_logs(roles: Roles) -> None:
    # given the writer's shop checked out a cart
    # when the writer reads the log
    with roles.connect("writer") as conn:
        count = conn.execute("SELECT count(*) FROM carts_events").fetchone()

    # then its events are there
    assert count is not None
    assert count[0] >= 3


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE carts_events SET topic = 'x'",
        "DELETE FROM carts_events",
        "TRUNCATE carts_events",
        "TRUNCATE orders_events CASCADE",
        "ALTER TABLE carts_events DISABLE TRIGGER ALL",
        "DROP TRIGGER {trigger} ON carts_events",
        "DROP TABLE carts_events",
        "ALTER TABLE carts_events RENAME TO old_carts",
        "DROP FUNCTION eventshop_refuse_change() CASCADE",
        "CREATE OR REPLACE FUNCTION eventshop_refuse_change() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    ],
)
def test_the_writer_may_not_change_the_logs(roles: Roles, statement: str) -> None:
    with roles.connect("writer") as conn:
        trigger = conn.execute(
            "SELECT tgname FROM pg_trigger "
            "WHERE tgrelid = 'carts_events'::regclass AND tgname LIKE %s",
            ("eventshop_append_only_%",),
        ).fetchone()
        assert trigger is not None
        before = conn.execute("SELECT count(*), max(topic) FROM carts_events")
        counted = before.fetchone()

        # when the writer tries to change, empty or unprotect the log
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                sql.SQL(statement.replace("{trigger}", "{}")).format(
                    sql.Identifier(str(trigger[0]))
                )
                if "{trigger}" in statement
                else statement.encode()
            )

        # then the database refuses, and the log is as it was
        after = conn.execute("SELECT count(*), max(topic) FROM carts_events")
        assert after.fetchone() == counted


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE eventshop_tracking SET position = position",
        "DELETE FROM eventshop_tracking WHERE subscriber = 'nobody'",
        "UPDATE orders_tracking SET notification_id = notification_id",
        "UPDATE stock_levels_g1 SET on_hand = on_hand",
        "DELETE FROM cart_lines_g1 WHERE false",
    ],
)
def test_the_writer_writes_positions_and_read_models(
    roles: Roles, statement: str
) -> None:
    # when the writer writes a tracking or read-model table (rolled back)
    with roles.connect("writer") as conn, conn.transaction(force_rollback=True):
        conn.execute(statement.encode())
    # then it was allowed (no error)


def test_the_auditor_reads_and_may_not_write(roles: Roles) -> None:
    with roles.connect("auditor") as conn:
        # when the auditor reads the log and a view
        events = conn.execute("SELECT count(*) FROM carts_events").fetchone()
        stock = conn.execute("SELECT count(*) FROM stock_levels_g1").fetchone()
        # then it may
        assert events is not None
        assert stock is not None
        assert events[0] >= 3
        assert stock[0] == 1

        # but it may write nothing, nor make a table
        for statement in (
            "INSERT INTO eventshop_tracking (subscriber, service, position) "
            "VALUES ('x', 'Carts', 0)",
            "UPDATE stock_levels_g1 SET on_hand = 0",
            "DELETE FROM carts_events",
            "CREATE TABLE auditor_notes (note text)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement.encode())


@pytest.mark.parametrize(
    "command",
    [
        ["audit", "history", "{cart}"],
        ["audit", "events", "--limit", "5"],
        ["audit", "trace", "{cart}"],
        ["audit", "stock", "TEA-SENCHA"],
        ["audit", "verify"],
    ],
)
def test_eventshop_audit_runs_as_the_auditor(
    roles: Roles, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # when an audit command runs as the auditor
    argv = [part.replace("{cart}", roles.cart_id) for part in command]
    if command[1] == "trace":
        # a trace is by correlation id: the cart's first event's
        with roles.connect("auditor") as conn:
            row = conn.execute(
                "SELECT correlation_id FROM audit_carts_events_g1 "
                "WHERE aggregate_id = %s ORDER BY version LIMIT 1",
                (uuid.UUID(roles.cart_id),),
            ).fetchone()
        assert row is not None
        argv[2] = str(row[0])
    status = main([*argv, "--database-url", roles.url("auditor")])

    # then it answers, having written nothing
    out, err = capsys.readouterr()
    assert (status, err) == (0, ""), out
    assert roles.passwords["auditor"] not in out


@pytest.mark.slow
def test_the_demo_runs_as_the_writer(
    roles: Roles, capsys: pytest.CaptureFixture[str]
) -> None:
    # when the demo runs as the writer, with a rebuild check of every view
    status = main(
        [
            "demo",
            *("--customers", "6", "--threads", "2", "--seed", "5"),
            *("--database-url", roles.url("writer")),
        ]
    )

    # then it passes
    out, err = capsys.readouterr()
    assert status == 0, out + err
    assert "FAILED" not in out
    assert roles.passwords["writer"] not in out + err


def test_a_rebuild_runs_as_the_writer(
    roles: Roles, capsys: pytest.CaptureFixture[str]
) -> None:
    # when the writer rebuilds a read model (new tables, old ones dropped)
    status = main(["rebuild", "stock", "--database-url", roles.url("writer")])

    # then it may
    out, err = capsys.readouterr()
    assert (status, err) == (0, ""), out
    assert "switched" in out


def test_applying_shows_no_password(roles: Roles) -> None:
    # given the roles were applied with passwords given
    # then what it printed and logged names where they come from, not them
    assert "$EVENTSHOP_WRITER_PASSWORD" in roles.output
    for password in roles.passwords.values():
        assert password not in roles.output
    # and the server stores a verifier, not the password
    with psycopg.connect(POSTGRES_URL) as conn:
        row = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s",
            (roles.names.writer,),
        ).fetchone()
    assert row is not None
    assert str(row[0]).startswith("SCRAM-SHA-256$")


def test_the_verifier_is_what_postgresql_computes() -> None:
    require_postgres()
    # given a role whose password PostgreSQL hashed itself
    role = f"es_roles_{uuid.uuid4().hex[:10]}_check"
    password = "Correct-horse 42!"
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(
                sql.SQL("CREATE ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
            row = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)
            ).fetchone()
        assert row is not None
        stored = str(row[0])
        iterations, salt = stored.split("$")[1].split(":")

        # when eventshop computes the verifier with the same salt
        computed = scram_verifier(
            password, salt=base64.b64decode(salt), iterations=int(iterations)
        )

        # then it is the same
        assert computed == stored
    finally:
        drop_roles(role)


def test_a_refused_set_up_is_one_line_without_passwords(
    roles: Roles,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given passwords in the environment, and a URL whose role may not make
    # roles (the writer), with its password in it
    for kind, variable in PASSWORD_VARIABLES.items():
        monkeypatch.setenv(variable, roles.passwords[kind])
    prefix = f"es_roles_{uuid.uuid4().hex[:10]}"
    try:
        # when it applies
        status = main(
            [
                *("db", "roles", "--apply", "--prefix", prefix),
                *("--database-url", roles.url("writer")),
            ]
        )
    finally:
        drop_roles(*astuple(RoleNames.with_prefix(prefix)))

    # then it is refused in one line that gives no password away
    out, err = capsys.readouterr()
    assert status == 2
    assert err.startswith("eventshop: error: setting up the roles")
    assert err.count("\n") == 1
    assert "permission denied" in err
    for password in roles.passwords.values():
        assert password not in out + err


def test_printing_the_plan_creates_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_postgres()
    # given a password in the environment
    monkeypatch.setenv(PASSWORD_VARIABLES["writer"], "never-shown-1234")
    prefix = f"es_roles_{uuid.uuid4().hex[:10]}"

    # when the plan is printed
    status = main(
        [
            *("db", "roles", "--prefix", prefix),
            *("--database-url", postgres_url("nowhere")),
        ]
    )

    # then it is SQL naming the roles, the password's variable, not it
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert f'CREATE ROLE "{prefix}_writer"' in out
    assert "$EVENTSHOP_WRITER_PASSWORD" in out
    assert "never-shown-1234" not in out
    # and no role was made
    with psycopg.connect(POSTGRES_URL) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE %s", (f"{prefix}%",)
        ).fetchone()
    assert found == (0,)


def test_on_sqlite_roles_are_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # when roles are asked of a SQLite store
    status = main(["db", "roles", "--database-url", f"sqlite:///{tmp_path}"])

    # then one line says they are a PostgreSQL matter
    _, err = capsys.readouterr()
    assert status == 2
    assert err.startswith("eventshop: error: database roles are a PostgreSQL matter")
    assert err.count("\n") == 1


def test_a_bad_prefix_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["db", "roles", "--prefix", 'x"; DROP ROLE postgres; --'])
    _, err = capsys.readouterr()
    assert status == 2
    assert "is not a plain lower-case name" in err


def test_applying_again_changes_nothing_it_made(
    roles: Roles, capsys: pytest.CaptureFixture[str]
) -> None:
    # given the roles applied and a shop's history written as the writer
    with psycopg.connect(POSTGRES_URL) as conn:
        owners_before = conn.execute(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = %s "
            "ORDER BY tablename",
            (roles.schema,),
        ).fetchall()

    # when they are applied again (as after an upgrade)
    status = main(
        [
            *("db", "roles", "--apply", "--prefix", roles.prefix),
            *("--database-url", postgres_url(roles.schema)),
        ]
    )

    # then the tables keep their owners, and the writer its rights
    _, err = capsys.readouterr()
    assert (status, err) == (0, "")
    with psycopg.connect(POSTGRES_URL) as conn:
        owners_after = conn.execute(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = %s "
            "ORDER BY tablename",
            (roles.schema,),
        ).fetchall()
    assert owners_after == owners_before
    with Shop(
        settings=Settings.from_url(roles.url("writer")), subscribers="workers"
    ) as shop:
        cart_id = shop.open_cart("customer-43")
        assert shop.get_cart(cart_id).lines == ()


def test_a_password_that_is_not_printable_ascii_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a password SCRAM would normalise first
    monkeypatch.setenv(PASSWORD_VARIABLES["owner"], "pässwörd-ünique")

    # when the roles are asked for
    status = main(["db", "roles", "--database-url", postgres_url("nowhere")])

    # then it is refused, naming the variable, not the password
    out, err = capsys.readouterr()
    assert status == 2
    assert "$EVENTSHOP_OWNER_PASSWORD must be printable ASCII" in err
    assert "pässwörd-ünique" not in out + err
