"""The embedded engine: eventsourcing's SQLite recorders, made append-only."""

from __future__ import annotations

from eventsourcing import sqlite as es_sqlite

from application.persistence import APPEND_ONLY_MESSAGE


class _AppendOnly(es_sqlite.SQLiteRecorder):
    events_table_name: str

    def construct_create_table_statements(self) -> list[str]:
        # A trigger on DELETE also turns off SQLite's truncate optimisation, so a
        # bare "DELETE FROM table" is refused too.
        table = self.events_table_name
        return [
            *super().construct_create_table_statements(),
            *(
                f"CREATE TRIGGER IF NOT EXISTS {table}_refuse_{operation} "
                f"BEFORE {operation.upper()} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
                for operation in ("update", "delete")
            ),
        ]


class SQLiteApplicationRecorder(_AppendOnly, es_sqlite.SQLiteApplicationRecorder):
    pass


class SQLiteProcessRecorder(_AppendOnly, es_sqlite.SQLiteProcessRecorder):
    pass


class SQLiteFactory(es_sqlite.SQLiteFactory):
    application_recorder_class = SQLiteApplicationRecorder
    process_recorder_class = SQLiteProcessRecorder
