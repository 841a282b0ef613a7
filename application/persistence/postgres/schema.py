"""The schema eventshop's PostgreSQL recorders create: append-only event tables
(triggers that refuse UPDATE, DELETE and TRUNCATE), created under an advisory
lock so that any number of processes can start at once."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from eventsourcing import postgres as es_postgres
from psycopg.sql import SQL, Identifier, Literal

from application.persistence import APPEND_ONLY_MESSAGE, DatabaseUnreachableError
from application.persistence.connections import (
    application_name,
    is_refusal,
    server_reason,
)

# Key of the advisory lock held while any eventshop process creates tables,
# types, functions or triggers. PostgreSQL DDL is not safe to run concurrently
# for the same objects ("tuple concurrently updated", duplicate pg_type rows).
SCHEMA_LOCK_KEY = 0x6576_7368_6F70  # "evshop"

REFUSE_CHANGE_FUNCTION = "eventshop_refuse_change"


def _trigger_name(table_name: str, purpose: str) -> str:
    """A trigger name that stays distinct after PostgreSQL cuts identifiers to
    63 bytes: with the table's whole name in it, a long one would cut both
    triggers to the same name, and the second would silently replace the
    first. A hash of the table name keeps it short and unique per table."""
    digest = hashlib.sha256(table_name.encode()).hexdigest()[:16]
    return f"eventshop_{purpose}_{digest}"


def append_only_trigger_name(table_name: str) -> str:
    return _trigger_name(table_name, "append_only")


def no_truncate_trigger_name(table_name: str) -> str:
    return _trigger_name(table_name, "no_truncate")


@contextmanager
def schema_lock(datastore: es_postgres.PostgresDatastore) -> Iterator[None]:
    """Holds the schema lock for the block's duration, on a connection of its
    own that is closed afterwards (a pooled one would stay open, idle, for as
    long as the pool keeps it)."""
    conninfo, kwargs = datastore.pool.conninfo, datastore.pool.kwargs
    assert isinstance(conninfo, str)
    assert isinstance(kwargs, dict)
    try:
        conn = psycopg.connect(
            conninfo,
            autocommit=True,
            **{**kwargs, "application_name": application_name("schema")},
        )
    except psycopg.OperationalError as error:
        raise _unreachable(datastore, error) from None
    with conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))


def _unreachable(
    datastore: es_postgres.PostgresDatastore, error: psycopg.OperationalError
) -> DatabaseUnreachableError:
    params = datastore.pool.kwargs
    assert isinstance(params, dict)
    location = (
        str(params["host"]),
        int(params["port"]),
        str(params["dbname"]),
        str(params["user"]),
    )
    reason = server_reason(error, str(params.get("password") or ""))
    return DatabaseUnreachableError(
        location, reason, seconds=0.0, refused=is_refusal(error)
    )


class SerializedSchema(es_postgres.PostgresRecorder):
    def create_table(self) -> None:
        with schema_lock(self.datastore):
            if self._set_up_by_another_role():
                # A least-privilege role (``eventshop db roles``): the owner
                # made these tables, and replacing their triggers and
                # functions is the owner's to do, not this role's.
                self.datastore.register_type_adapters()
                return
            super().create_table()

    def _own_table_names(self) -> list[str]:
        """The tables this recorder creates."""
        return [
            getattr(self, attribute)
            for attribute in ("events_table_name", "tracking_table_name")
            if hasattr(self, attribute)
        ]

    def _set_up_by_another_role(self) -> bool:
        """Whether every table of this recorder exists, made by a role the
        current one is not (nor a member of), so it may not change them."""
        names = self._own_table_names()
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                "SELECT count(*) AS found, "
                "coalesce(bool_or(pg_has_role(c.relowner, 'USAGE')), false) AS ours "
                "FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = ANY(%s)",
                (self.datastore.schema, names),
            ).fetchone()
        assert row is not None
        return bool(row["found"] == len(names) and not row["ours"])


class AppendOnly(SerializedSchema, es_postgres.PostgresApplicationRecorder):
    def __init__(self, datastore: es_postgres.PostgresDatastore, **kwargs: str) -> None:
        super().__init__(datastore, **kwargs)
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        function = Identifier(REFUSE_CHANGE_FUNCTION)
        self.sql_create_statements += [
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}() "
                "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION '% on %.%: {message}', "
                "TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME "
                "USING ERRCODE = 'insufficient_privilege'; "
                "END $$"
            ).format(
                schema=schema,
                function=function,
                message=SQL(APPEND_ONLY_MESSAGE),
            ),
            SQL(
                "CREATE OR REPLACE TRIGGER {trigger} "
                "BEFORE UPDATE OR DELETE ON {schema}.{table} "
                "FOR EACH ROW EXECUTE FUNCTION {schema}.{function}()"
            ).format(
                trigger=Identifier(append_only_trigger_name(self.events_table_name)),
                schema=schema,
                table=table,
                function=function,
            ),
            SQL(
                "CREATE OR REPLACE TRIGGER {trigger} "
                "BEFORE TRUNCATE ON {schema}.{table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{function}()"
            ).format(
                trigger=Identifier(no_truncate_trigger_name(self.events_table_name)),
                schema=schema,
                table=table,
                function=function,
            ),
            SQL("COMMENT ON TABLE {schema}.{table} IS {comment}").format(
                schema=schema, table=table, comment=Literal(APPEND_ONLY_MESSAGE)
            ),
        ]
