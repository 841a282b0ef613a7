"""Least-privilege PostgreSQL roles for a shop's schema (``eventshop db roles``).

Three roles, made by an administrator (a superuser) once per schema:

* the **owner** owns the schema, the services' event, tracking and snapshot
  tables (and so their append-only triggers), their sequences, functions and
  types. Nothing runs as it day to day; it is who changes that schema.
* the **writer** is what shops and workers connect as. It may SELECT and
  INSERT the event tables, but not UPDATE or DELETE them (it lacks the
  rights) nor TRUNCATE them (the owner's trigger refuses it), and as it owns
  none of them it cannot drop or disable their triggers. It owns the view
  store's tables (read models, positions, chains, reports), and may create
  tables in the schema, so that a rebuild can create a new generation of a
  read model and drop the old one.
* the **auditor** may only read (``eventshop audit``).

The plan is SQL composed with ``psycopg.sql``, printed and applied alike: what
an administrator reads is what runs, but for passwords. Those are sent as
SCRAM-SHA-256 verifiers computed here, so that no password reaches the
server's statement log, and printed as a placeholder naming their variable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg
from eventsourcing.persistence import PersistenceError
from psycopg.sql import SQL, Composed, Identifier, Literal

from application.databases import ConfigurationError, PostgresLocation, redact
from application.service_names import SERVICE_NAMES

DEFAULT_PREFIX = "eventshop"
KINDS = ("owner", "writer", "auditor")
PASSWORD_VARIABLES: Mapping[str, str] = {
    kind: f"EVENTSHOP_{kind.upper()}_PASSWORD" for kind in KINDS
}
"""Where ``eventshop db roles --apply`` reads each role's password, if any."""

# Room for the longest suffix within PostgreSQL's 63 bytes; lower case only,
# so that a name needs no quoting where someone types it (psql, a URL).
_PREFIX_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,54}")
_SCRAM_ITERATIONS = 4096

EVENT_TABLES = tuple(f"{name.lower()}_events" for name in SERVICE_NAMES)
"""The services' append-only logs: the writer may only read and add to them."""
OWNER_TABLES = tuple(
    f"{name.lower()}_{purpose}"
    for name in SERVICE_NAMES
    for purpose in ("events", "tracking", "snapshots")
)
"""The tables the services' recorders create (those a service has): the
owner's. Every other table in the schema is the view store's: the writer's."""


class RoleSetupError(ConfigurationError):
    """The database refused to set up the roles as asked."""


@dataclass(frozen=True)
class RoleNames:
    owner: str
    writer: str
    auditor: str

    @classmethod
    def with_prefix(cls, prefix: str = DEFAULT_PREFIX) -> RoleNames:
        """``<prefix>_owner``, ``<prefix>_writer`` and ``<prefix>_auditor``."""
        if _PREFIX_PATTERN.fullmatch(prefix) is None:
            raise ConfigurationError(
                f"role prefix {prefix[:80]!r} is not a plain lower-case name "
                "(letters, digits, _; at most 55 characters)"
            )
        return cls(*(f"{prefix}_{kind}" for kind in KINDS))

    def of(self, kind: str) -> str:
        name: str = getattr(self, kind)
        return name


@dataclass(frozen=True)
class RolePasswords:
    """The passwords given, by role kind. Never in a repr."""

    by_kind: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None
    ) -> RolePasswords:
        environ = os.environ if environ is None else environ
        given = {
            kind: environ[variable]
            for kind, variable in PASSWORD_VARIABLES.items()
            if environ.get(variable)
        }
        for kind, password in given.items():
            # SCRAM normalises non-ASCII passwords (SASLprep) before hashing;
            # rather than half-doing that here, such passwords are refused.
            if not (password.isascii() and password.isprintable()):
                raise ConfigurationError(
                    f"${PASSWORD_VARIABLES[kind]} must be printable ASCII"
                )
        return cls(given)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self.by_kind.values())


def scram_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = _SCRAM_ITERATIONS
) -> str:
    """What PostgreSQL stores for ``password`` under ``scram-sha-256`` (RFC
    5802, 7677): given to ``ALTER ROLE ... PASSWORD``, it is kept as it is,
    so the password itself never travels to the server."""
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return (
        f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class RolePlan:
    """The statements that make the roles (``before_setup``) and, once the
    shop has created its tables, hand them over and grant what each role may
    do (``after_setup``)."""

    before_setup: Sequence[Composed]
    after_setup: Sequence[Composed]


def role_plan(
    names: RoleNames,
    location: PostgresLocation,
    passwords: RolePasswords,
    *,
    printable: bool,
) -> RolePlan:
    """The plan for the schema ``location`` names. ``printable``: passwords
    as placeholders (for showing), else as verifiers (for applying)."""
    return RolePlan(
        before_setup=[
            *_roles(names, passwords, printable=printable),
            *_schema(names, location),
        ],
        after_setup=[*_ownership(names, location.schema), *_grants(names, location)],
    )


def _roles(
    names: RoleNames, passwords: RolePasswords, *, printable: bool
) -> list[Composed]:
    statements: list[Composed] = []
    for kind in KINDS:
        role = names.of(kind)
        statements += [
            # CREATE ROLE has no IF NOT EXISTS; the block makes it rerunnable.
            SQL(
                "DO $$ BEGIN IF NOT EXISTS "
                "(SELECT FROM pg_catalog.pg_roles WHERE rolname = {name}) "
                "THEN CREATE ROLE {role}; END IF; END $$"
            ).format(name=Literal(role), role=Identifier(role)),
            # Also for a role that existed: no more than these rights.
            SQL(
                "ALTER ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                "NOREPLICATION NOBYPASSRLS"
            ).format(role=Identifier(role)),
        ]
        password = passwords.by_kind.get(kind)
        if password is not None:
            verifier = (
                SQL("'<SCRAM-SHA-256 verifier of ${}>'").format(
                    SQL(PASSWORD_VARIABLES[kind])
                )
                if printable
                else Literal(scram_verifier(password))
            )
            statements.append(
                SQL("ALTER ROLE {role} PASSWORD {verifier}").format(
                    role=Identifier(role), verifier=verifier
                )
            )
    # Were the writer or the auditor a member of the owner, they would hold
    # its rights (drop the triggers): make sure they are not.
    statements.append(
        SQL("REVOKE {owner} FROM {writer}, {auditor}").format(
            owner=Identifier(names.owner),
            writer=Identifier(names.writer),
            auditor=Identifier(names.auditor),
        )
    )
    return statements


def _schema(names: RoleNames, location: PostgresLocation) -> list[Composed]:
    schema = Identifier(location.schema)
    owner, writer, auditor = (Identifier(names.of(kind)) for kind in KINDS)
    return [
        SQL("GRANT CONNECT ON DATABASE {db} TO {owner}, {writer}, {auditor}").format(
            db=Identifier(location.dbname), owner=owner, writer=writer, auditor=auditor
        ),
        SQL("CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner}").format(
            schema=schema, owner=owner
        ),
        SQL("ALTER SCHEMA {schema} OWNER TO {owner}").format(
            schema=schema, owner=owner
        ),
        # CREATE: a rebuild makes the tables of a new generation.
        SQL("GRANT USAGE, CREATE ON SCHEMA {schema} TO {writer}").format(
            schema=schema, writer=writer
        ),
        SQL("GRANT USAGE ON SCHEMA {schema} TO {auditor}").format(
            schema=schema, auditor=auditor
        ),
        # Tables made later (by a newer version, or a rebuild) are covered too.
        # The owner's: no more than adding to them, as for its event tables.
        SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} "
            "GRANT SELECT, INSERT ON TABLES TO {writer}"
        ).format(owner=owner, schema=schema, writer=writer),
        SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} "
            "GRANT USAGE, SELECT ON SEQUENCES TO {writer}"
        ).format(owner=owner, schema=schema, writer=writer),
        *(
            SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {creator} IN SCHEMA {schema} "
                "GRANT SELECT ON TABLES TO {auditor}"
            ).format(creator=creator, schema=schema, auditor=auditor)
            for creator in (owner, writer)
        ),
    ]


def _ownership(names: RoleNames, schema_name: str) -> list[Composed]:
    """Hands what the shop's set-up created (as the administrator) over:
    the services' tables, functions and types to the owner, the others to
    the writer. Catalog loops, as which tables exist is known only then."""
    schema = Literal(schema_name)
    owner, writer = Literal(names.owner), Literal(names.writer)
    return [
        SQL(
            "DO $$ DECLARE t record; BEGIN "
            "FOR t IN SELECT c.relname, c.relname = ANY({owner_tables}) AS owners "
            "FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = {schema} AND c.relkind IN ('r', 'p') "
            "ORDER BY c.relname LOOP "
            "EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', {schema}, t.relname, "
            "CASE WHEN t.owners THEN {owner} ELSE {writer} END); "
            "END LOOP; END $$"
        ).format(
            owner_tables=Literal(list(OWNER_TABLES)),
            schema=schema,
            owner=owner,
            writer=writer,
        ),
        SQL(
            "DO $$ DECLARE r record; BEGIN "
            "FOR r IN SELECT p.oid::pg_catalog.regprocedure AS routine "
            "FROM pg_catalog.pg_proc p "
            "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = {schema} LOOP "
            "EXECUTE format('ALTER ROUTINE %s OWNER TO %I', r.routine, {owner}); "
            "END LOOP; "
            "FOR r IN SELECT c.relname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = {schema} AND c.relkind = 'c' LOOP "
            "EXECUTE format('ALTER TYPE %I.%I OWNER TO %I', "
            "{schema}, r.relname, {owner}); "
            "END LOOP; END $$"
        ).format(schema=schema, owner=owner),
    ]


def _grants(names: RoleNames, location: PostgresLocation) -> list[Composed]:
    schema = Identifier(location.schema)
    writer, auditor = Identifier(names.writer), Identifier(names.auditor)
    event_tables = SQL(", ").join(
        SQL("{schema}.{table}").format(schema=schema, table=Identifier(table))
        for table in EVENT_TABLES
    )
    return [
        # Tracking positions, snapshots (derived) and the view store's.
        SQL(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} "
            "TO {writer}"
        ).format(schema=schema, writer=writer),
        # ...but the logs are append-only, for the writer by its rights too.
        SQL(
            "REVOKE UPDATE, DELETE, REFERENCES, TRIGGER ON {tables} FROM {writer}"
        ).format(tables=event_tables, writer=writer),
        # The one exception: the library serializes appends by LOCK TABLE ...
        # IN EXCLUSIVE MODE, which PostgreSQL allows only with UPDATE, DELETE
        # or TRUNCATE. TRUNCATE itself is refused by the owner's trigger, which
        # the writer, not owning the table, can neither drop nor disable.
        SQL("GRANT TRUNCATE ON {tables} TO {writer}").format(
            tables=event_tables, writer=writer
        ),
        SQL(
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {writer}"
        ).format(schema=schema, writer=writer),
        SQL("GRANT EXECUTE ON ALL ROUTINES IN SCHEMA {schema} TO {writer}").format(
            schema=schema, writer=writer
        ),
        SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {auditor}").format(
            schema=schema, auditor=auditor
        ),
    ]


SETUP_NOTE = "-- the shop creates its tables here (as the administrator)"


def render(plan: RolePlan) -> str:
    """The plan as an SQL script, a statement per line."""
    lines = [_as_string(statement) + ";" for statement in plan.before_setup]
    lines.append(SETUP_NOTE)
    lines += [_as_string(statement) + ";" for statement in plan.after_setup]
    return "\n".join(lines)


def _as_string(statement: Composed) -> str:
    # No connection: the names are plain identifiers and the literals ASCII.
    return statement.as_string(None)


def apply_plan(
    admin: PostgresLocation,
    plan: RolePlan,
    set_up_shop: Callable[[], None],
    *,
    secrets: Sequence[str] = (),
) -> None:
    """Runs ``plan`` as ``admin``: the roles and the schema, then
    ``set_up_shop`` (which creates the shop's tables, connecting as
    ``admin``), then the hand-over and the grants. Rerunnable. A refusal is
    a :class:`RoleSetupError` that gives no password away."""
    hidden = (*secrets, admin.password)
    try:
        with psycopg.connect(admin.conninfo(), autocommit=True) as conn:
            for statement in plan.before_setup:
                conn.execute(statement)
        set_up_shop()
        # One transaction: the hand-over and the grants never half-done.
        with (
            psycopg.connect(admin.conninfo(), autocommit=True) as conn,
            conn.transaction(),
        ):
            for statement in plan.after_setup:
                conn.execute(statement)
    except (psycopg.Error, PersistenceError) as error:
        # (PersistenceError: the library's, from the shop's set-up.)
        reason = " ".join(str(error).split()) or type(error).__name__
        raise RoleSetupError(
            f"setting up the roles as {admin.user}@{admin.host}:{admin.port}/"
            f"{admin.dbname} failed: {redact(reason, *hidden)}"
        ) from None
