"""One key store per process and views database, shared by the services that
encrypt and decrypt with it, so that a key forgotten by one is forgotten by all
at once, and the process holds one small pool for it."""

from __future__ import annotations

import threading
from typing import ClassVar

from sqlalchemy.exc import InterfaceError, OperationalError

from application.config import VIEWS, Settings
from application.persistence import DatabaseUnreachableError
from application.persistence.connections import server_reason
from application.persistence.views_database import views_engine
from application.privacy.key_store import CustomerKeyStore


def open_key_store(settings: Settings) -> CustomerKeyStore:
    """A key store on the views' database of ``settings``, its table made if
    missing; the caller disposes of its engine."""
    storage = settings.storage_of(VIEWS)
    engine = views_engine(settings, role="keys", pool_size=1)
    store = CustomerKeyStore(
        engine,
        max_idle_seconds=None
        if storage.engine == "sqlite"
        else settings.pool_max_idle_seconds,
    )
    try:
        store.create_table()
    except (OperationalError, InterfaceError) as error:
        engine.dispose()
        pg = storage.postgres
        if pg is None:
            raise
        # Told as the services' own connection trouble is, and so, at the
        # boundary, as a DatabaseConnectionError naming where and why.
        reason = server_reason(error.orig or error, pg.password)
        raise DatabaseUnreachableError(
            (pg.host, pg.port, pg.dbname, pg.user),
            reason,
            seconds=0.0,
            refused="FATAL" in str(error.orig),
        ) from None
    except BaseException:
        engine.dispose()
        raise
    return store


class SharedKeyStores:
    """The key store of each views database, taken by each service as it
    opens and released as it closes; the last release disposes of it."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _shared: ClassVar[dict[str, tuple[CustomerKeyStore, int]]] = {}

    @classmethod
    def take(cls, settings: Settings) -> CustomerKeyStore:
        where = settings.storage_of(VIEWS).url()
        with cls._lock:
            shared = cls._shared.get(where)
            if shared is None:
                store, users = open_key_store(settings), 0
            else:
                store, users = shared
            cls._shared[where] = (store, users + 1)
            return store

    @classmethod
    def release(cls, store: CustomerKeyStore) -> None:
        with cls._lock:
            for where, (shared, users) in list(cls._shared.items()):
                if shared is store:
                    if users > 1:
                        cls._shared[where] = (shared, users - 1)
                        return
                    del cls._shared[where]
        store.engine.dispose()
