"""PostgreSQL cuts identifiers to 63 bytes: the append-only triggers of an event
table with a long name must still be two triggers, each refusing its
statements (one used to replace the other, silently)."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from psycopg import sql

from application.persistence import APPEND_ONLY_MESSAGE
from application.persistence.postgres import PostgresApplicationRecorder
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres


@pytest.fixture
def datastore(postgres_schema: str) -> Iterator[PostgresDatastore]:
    info = psycopg.conninfo.conninfo_to_dict(POSTGRES_URL)
    store = PostgresDatastore(
        dbname=str(info["dbname"]),
        host=str(info["host"]),
        port=str(info.get("port", 5432)),
        user=str(info["user"]),
        password=str(info.get("password", "")),
        schema=postgres_schema,
    )
    yield store
    store.close()


@pytest.mark.parametrize("length", [62, 63])
def test_update_delete_and_truncate_are_all_refused_for_a_long_table_name(
    datastore: PostgresDatastore, length: int
) -> None:
    table_name = ("events_of_a_service_with_a_long_name_" * 2)[:length]
    recorder = PostgresApplicationRecorder(datastore, events_table_name=table_name)
    recorder.create_table()
    event = StoredEvent(uuid4(), 1, "topic", b"state")
    recorder.insert_events([event])
    table = sql.Identifier(datastore.schema, table_name)

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        triggers = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass "
            "AND NOT tgisinternal",
            (f'"{datastore.schema}"."{table_name}"',),
        ).fetchone()
        assert triggers == (2,)
        for statement in (
            "UPDATE {table} SET state = 'changed'",
            "DELETE FROM {table}",
            "TRUNCATE {table}",
        ):
            with pytest.raises(psycopg.Error, match=APPEND_ONLY_MESSAGE):
                conn.execute(sql.SQL(statement).format(table=table))
        rows = conn.execute(
            sql.SQL("SELECT originator_id, state FROM {table}").format(table=table)
        ).fetchall()
    assert rows == [(event.originator_id, b"state")]
