"""Driving the process managers by hand: no runner threads, the test decides
which events each one gets and in batches of what size."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest
from eventsourcing.persistence import Notification

from application.config import Settings
from application.services import Carts, Inventory, Orders
from application.services.loading import DEFAULT_CACHE_SIZE
from application.services.process import ProcessSubscriber
from application.topology import TOPOLOGY
from tests.conftest import postgres_url, temporary_postgres_schema

SAGA_ORDER = ("checkout", "allocation", "confirmation")
"""The order in which a settling round feeds them (the saga's own)."""


def ignore_report(name: str, state: str, error: str | None) -> None:
    pass


@dataclass
class Services:
    """The three services over one store, and the process managers of two of
    them, each with a cache of ``cache_size`` aggregates (0: none)."""

    carts: Carts
    orders: Orders
    inventory: Inventory
    subscribers: dict[str, ProcessSubscriber]

    @classmethod
    def open(cls, settings: Settings, cache_size: int = DEFAULT_CACHE_SIZE) -> Services:
        carts, orders, inventory = (
            Carts(settings),
            Orders(settings),
            Inventory(settings),
        )
        services = {service.name: service for service in (orders, inventory)}
        subscribers = {
            manager.name: ProcessSubscriber(
                services[manager.service.name],
                TOPOLOGY.subscription(manager),
                ignore_report,
                cache_size,
            )
            for manager in TOPOLOGY.process_managers
        }
        return cls(carts, orders, inventory, subscribers)

    @classmethod
    @contextmanager
    def opened(
        cls, settings: Settings, cache_size: int = DEFAULT_CACHE_SIZE
    ) -> Iterator[Services]:
        """The services, closed at the end of the block."""
        services = cls.open(settings, cache_size)
        try:
            yield services
        finally:
            services.close()

    def close(self) -> None:
        for service in (self.carts, self.orders, self.inventory):
            service.close()

    def log_of(self, service_name: str) -> Carts | Orders | Inventory:
        return {s.name: s for s in (self.carts, self.orders, self.inventory)}[
            service_name
        ]

    def pending(self, subscriber: ProcessSubscriber) -> list[Notification]:
        """The events the subscriber has yet to handle, in log order."""
        position = subscriber.position() or 0
        return list(
            self.log_of(subscriber.follows).recorder.select_notifications(
                start=position + 1, limit=1_000_000, topics=tuple(subscriber.topics)
            )
        )

    def feed(
        self,
        name: str,
        batch_size: Callable[[], int] = lambda: 1,
        notifications: Sequence[Notification] | None = None,
    ) -> None:
        """Hands the subscriber its pending events (or ``notifications``) in
        batches of the sizes ``batch_size`` gives."""
        subscriber = self.subscribers[name]
        pending = (
            self.pending(subscriber) if notifications is None else list(notifications)
        )
        position = subscriber.position() or 0
        mapper = self.log_of(subscriber.follows).mapper
        while pending:
            size = batch_size()
            batch, pending = pending[:size], pending[size:]
            events = [mapper.to_domain_event(notification) for notification in batch]
            applied = subscriber.process(
                events, expected_position=position, new_position=batch[-1].id
            )
            assert applied, f"{name}: position moved under the test"
            position = batch[-1].id

    def settle(self, batch_size: Callable[[], int] = lambda: 1) -> None:
        """Feeds every process manager, in the saga's order, until none has
        anything left to do."""
        while any(self.pending(self.subscribers[name]) for name in SAGA_ORDER):
            for name in SAGA_ORDER:
                self.feed(name, batch_size)


@contextmanager
def fresh_settings(engine: str) -> Iterator[Settings]:
    """Settings of a new, empty store on ``engine``, removed afterwards."""
    with ExitStack() as stack:
        if engine == "sqlite":
            directory = stack.enter_context(TemporaryDirectory())
            yield Settings.from_url(data_dir=Path(directory))
        else:
            schema = stack.enter_context(temporary_postgres_schema())
            yield Settings.from_url(postgres_url(schema))


def spy_on(monkeypatch: pytest.MonkeyPatch, recorder: object, method: str) -> list[Any]:
    """Records the argument of every call of the recorder's ``method``."""
    calls: list[Any] = []
    original = getattr(recorder, method)

    def spy(*args: Any, **kwargs: Any) -> Any:
        argument = args[0] if args else kwargs
        calls.append(dict(argument) if isinstance(argument, Mapping) else argument)
        return original(*args, **kwargs)

    monkeypatch.setattr(recorder, method, spy)
    return calls
