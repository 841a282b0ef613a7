"""Rebuilding a shop's read models: its services as the event sources
``projections.shadow_rebuild`` reads, and the entry point the CLI and ``Shop`` use."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from application.bootstrap import open_stores
from application.config import Settings
from application.subscribers.decoding import decoded, undecodable
from application.topology import TOPOLOGY
from projections.read_model import ReadModel
from projections.shadow_rebuild import (
    DEFAULT_BATCH_SIZE,
    ProgressCallback,
    RebuildMode,
    RebuildReport,
    rebuild,
)
from projections.store import ViewStore

ALL_READ_MODELS = "all"


class OpenStores(Protocol):
    """What rebuilding needs of an open shop (``ShopParts`` and ``Stores`` are
    one, as is a ``Shop``): its view store and its services, by name."""

    @property
    def views(self) -> ViewStore: ...

    @property
    def services(self) -> Mapping[str, Application[Any]]: ...


class ServiceEventSource:
    """The notification log of one service (an eventsourcing application)."""

    def __init__(self, service: Application[Any]) -> None:
        self.service = service

    @property
    def name(self) -> str:
        return self.service.name

    def head(self) -> int:
        return self.service.recorder.max_notification_id() or 0

    def read(
        self, after: int, limit: int, up_to: int | None = None
    ) -> Sequence[Notification]:
        return self.service.recorder.select_notifications(
            start=after, limit=limit, stop=up_to, inclusive_of_start=False
        )

    def decode(self, notification: Notification) -> object:
        return decoded(self.name, notification, self.service.mapper.to_domain_event)

    def check_topic(self, notification: Notification) -> None:
        problem = undecodable(self.name, notification, decode=None)
        if problem is not None:
            raise problem


def read_models_named(name: str) -> tuple[type[ReadModel], ...]:
    """The projection called ``name``, or every one for ``"all"``, as the
    topology lists them; raises LookupError naming the known ones."""
    if name == ALL_READ_MODELS:
        return TOPOLOGY.read_model_classes
    return (TOPOLOGY.read_model_named(name).read_model,)


def rebuild_projection(
    target: Settings | OpenStores,
    name: str,
    *,
    mode: RebuildMode = "switch-if-equal",
    progress: ProgressCallback | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[RebuildReport]:
    """Rebuilds the read model ``name`` (or ``"all"`` of them, one after the
    other) of a shop, from its open ``Shop`` (any ``OpenStores``) or from its
    settings, while its subscribers keep running wherever they run. See
    ``projections.shadow_rebuild`` for what each mode does."""
    projections = read_models_named(name)
    with _store_and_services(target, projections) as (store, services):
        return [
            rebuild(
                store,
                projection,
                ServiceEventSource(services[TOPOLOGY.follows(projection).name]),
                mode=mode,
                progress=progress,
                batch_size=batch_size,
            )
            for projection in projections
        ]


@contextmanager
def _store_and_services(
    target: Settings | OpenStores, projections: Sequence[type[ReadModel]]
) -> Iterator[tuple[ViewStore, Mapping[str, Application[Any]]]]:
    if not isinstance(target, Settings):
        yield target.views, target.services
        return
    # Only the services the read models follow: a rebuild of one opens one.
    followed = {TOPOLOGY.follows(projection).name for projection in projections}
    with open_stores(target, followed) as stores:
        yield stores.views, stores.services
