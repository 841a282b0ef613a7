"""The view store: read-model tables, their tracking positions, and the registry
of which generation of each projection is serving readers.

``ViewStore`` is the one object callers hold; it hands each job to a part of
its own, one module each:

| module | part | job |
|---|---|---|
| ``tables`` | | the store's own tables |
| ``schema`` | ``StoreDatabase`` | the engine, schema changes under a lock |
| ``registry`` | ``GenerationRegistry`` | which generation serves readers; reading it |
| ``generations`` | ``Generations`` | reserving, creating, dropping generations |
| ``positions`` | ``Positions`` | positions, and writing a batch with its position |
| ``dead_letters`` | ``DeadLetterStore`` | parking events, retrying, discarding |
| ``reports`` | ``SubscriberReports`` | subscribers' states and heartbeats |
| ``comparison`` | | comparing two generations' tables: checksums, differing rows |
"""

from __future__ import annotations

from projections.store.comparison import CHECKSUM_CHUNK_ROWS
from projections.store.generations import subscriber_name
from projections.store.positions import BULK_PAGE_CACHE, DEFAULT_PAGE_CACHE
from projections.store.registry import ActiveGeneration, ActiveView, RegistryLock
from projections.store.reports import SubscriberReport
from projections.store.schema import SCHEMA_LOCK_KEY
from projections.store.tables import (
    dead_letters_table,
    generations_table,
    subscribers_table,
    system_metadata,
    tracking_table,
)
from projections.store.view_store import ViewStore

__all__ = [
    "BULK_PAGE_CACHE",
    "CHECKSUM_CHUNK_ROWS",
    "DEFAULT_PAGE_CACHE",
    "SCHEMA_LOCK_KEY",
    "ActiveGeneration",
    "ActiveView",
    "RegistryLock",
    "SubscriberReport",
    "ViewStore",
    "dead_letters_table",
    "generations_table",
    "subscriber_name",
    "subscribers_table",
    "system_metadata",
    "tracking_table",
]
