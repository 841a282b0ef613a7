"""The SQLAlchemy engine on a shop's views database (the shop's own, unless the
views are given one), for the view store and for the customers' key store."""

from __future__ import annotations

from sqlalchemy import Engine

from application.config import VIEWS, Settings
from application.persistence.connections import application_name
from projections.store.engine import postgres_engine, sqlite_engine


def views_engine(settings: Settings, *, role: str, pool_size: int) -> Engine:
    """An engine on the views database of ``settings``; on PostgreSQL its
    connections name ``role`` in their ``application_name``."""
    storage = settings.storage_of(VIEWS)
    if storage.engine == "sqlite":
        return sqlite_engine(
            storage.sqlite_file(VIEWS), lock_timeout=settings.lock_timeout_seconds
        )
    pg = storage.postgres
    assert pg is not None
    return postgres_engine(
        host=pg.host,
        port=pg.port,
        user=pg.user,
        password=pg.password,
        dbname=pg.dbname,
        schema=pg.schema,
        pool_size=pool_size,
        max_overflow=settings.pool_max_overflow,
        application_name=application_name(role),
    )
