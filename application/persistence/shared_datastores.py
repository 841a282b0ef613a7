"""One datastore per process and database: the services of a shop share a pool.

The library's factory makes a datastore, and so a pool, for each service; the
three services of a shop keep their tables in one schema, so each factory
trades its own (never opened) for the one this process already has.
"""

from __future__ import annotations

import threading
from typing import ClassVar

from eventsourcing import postgres as es_postgres

from application.persistence.connections import BudgetedDatastore


class SharedDatastores:
    """One datastore, and so one pool, per process and database (and settings):
    the three services of a shop keep their tables in one schema, and a pool
    each would hold three times the idle connections one needs. Each
    service's factory takes it and releases it when the service closes; the
    last release closes the pool."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _shared: ClassVar[dict[tuple[object, ...], BudgetedDatastore]] = {}
    _users: ClassVar[dict[int, int]] = {}

    @classmethod
    def take(
        cls,
        configured: es_postgres.PostgresDatastore,
        *,
        connect_timeout_seconds: float,
        command_timeout_seconds: float,
        max_idle_seconds: float,
        max_overflow: int,
    ) -> BudgetedDatastore:
        """The shared datastore configured as ``configured`` is (which is
        closed: it was never opened)."""
        key = (
            *_configuration(configured),
            connect_timeout_seconds,
            command_timeout_seconds,
            max_idle_seconds,
            max_overflow,
        )
        with cls._lock:
            shared = cls._shared.get(key)
            if shared is None:
                shared = BudgetedDatastore.replacing(
                    configured,
                    connect_timeout_seconds=connect_timeout_seconds,
                    command_timeout_seconds=command_timeout_seconds,
                    max_idle_seconds=max_idle_seconds,
                    max_overflow=max_overflow,
                )
                cls._shared[key] = shared
            else:
                configured.close()
            cls._users[id(shared)] = cls._users.get(id(shared), 0) + 1
            return shared

    @classmethod
    def release(cls, datastore: BudgetedDatastore) -> None:
        with cls._lock:
            users = cls._users.get(id(datastore), 0) - 1
            if users > 0:
                cls._users[id(datastore)] = users
                return
            cls._users.pop(id(datastore), None)
            for key, shared in list(cls._shared.items()):
                if shared is datastore:
                    del cls._shared[key]
        datastore.close()


def _configuration(datastore: es_postgres.PostgresDatastore) -> tuple[object, ...]:
    """Everything the library's factory configured a datastore with."""
    pool = datastore.pool
    params = pool.kwargs
    assert isinstance(params, dict)
    return (
        *(str(params[name]) for name in ("dbname", "host", "port", "user")),
        str(params.get("password") or ""),
        pool.get_password_func,
        datastore.schema,
        pool.min_size,
        pool.max_waiting,
        pool.max_lifetime,
        pool.timeout,
        datastore.idle_in_transaction_session_timeout,
        datastore.pre_ping,
        datastore.lock_timeout,
        datastore.pool_open_timeout,
        datastore.single_row_tracking,
        datastore.originator_id_type,
        datastore.enable_db_functions,
    )
