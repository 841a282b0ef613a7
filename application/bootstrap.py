"""The composition root: the one place that builds a shop's object graph from
its settings.

``bootstrap`` opens everything a shop is (the three services, the view store,
the queries, the audit, the payment-deadline ticker, the subscribers and the
dead letters) and, as ``hosting`` says, starts its subscribers; ``Shop`` is a
facade over what it returns, and the command line uses it directly. Callers
that need only part of the graph open only that: ``open_services``,
``open_views``, both as ``open_stores``, or what a worker needs as
``open_worker_stores``.

Its parameters are what tests replace: the settings (fault policies, timeouts,
storage), the clock payment deadlines are judged by, and where the
subscribers run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Literal, TypeVar

from application.audit.service import Audit
from application.closing import ClosedOnExit
from application.config import Settings
from application.persistence.views_database import views_engine
from application.services import Carts, Inventory, Orders
from application.shop_queries import ShopQueries
from application.subscribers.dead_letters import DeadLetters
from application.subscribers.hosting import Subscribers, worker_databases
from application.subscribers.payment_deadline_ticker import (
    Clock,
    PaymentDeadlineTicker,
    system_clock,
)
from projections.read_models.catalog import READ_MODELS
from projections.store import ViewStore

Hosting = Literal["embedded", "threads", "workers"]
"""Where a shop's subscribers run: in a helper process it starts
(``"embedded"``), in its own threads (``"threads"``), or elsewhere, in
``eventshop worker`` processes, so that this one starts none (``"workers"``)."""

Service = Carts | Orders | Inventory
S = TypeVar("S", Carts, Orders, Inventory)

# In the order of ``Shop.services`` (and of the CLI's service names).
SERVICE_CLASSES: tuple[type[Carts], type[Orders], type[Inventory]] = (
    Carts,
    Orders,
    Inventory,
)


def open_views(settings: Settings) -> ViewStore:
    """The view database of a shop (the shop's, unless the views are given
    one of their own), with its schema created if missing."""
    engine = views_engine(settings, role="views", pool_size=settings.pool_size)
    store = ViewStore(engine, READ_MODELS)
    store.create_schema()
    return store


def open_services(
    settings: Settings, names: Collection[str] | None = None
) -> dict[str, Service]:
    """The shop's services (or those ``names`` names), by name, in the order
    of ``SERVICE_CLASSES``; the caller closes them. Should one fail to open,
    those already opened are closed."""
    wanted = [
        service for service in SERVICE_CLASSES if names is None or service.name in names
    ]
    unknown = set(names or ()) - {service.name for service in wanted}
    if unknown:
        known = ", ".join(service.name for service in SERVICE_CLASSES)
        raise LookupError(f"no service named {sorted(unknown)} (known: {known})")
    with ExitStack() as opened:
        services: dict[str, Service] = {}
        for service_class in wanted:
            service = service_class(settings)
            opened.callback(service.close)
            services[service.name] = service
        opened.pop_all()
        return services


@dataclass(frozen=True)
class Stores(ClosedOnExit):
    """A shop's services and view store, without the rest of its graph: what
    a worker, a rebuild or the helper process runs against."""

    services: dict[str, Service]
    views: ViewStore

    def close(self) -> None:
        _release(self.services, self.views)


def open_stores(settings: Settings, names: Collection[str] | None = None) -> Stores:
    """The services (or those named) and the view store of a shop."""
    services = open_services(settings, names)
    try:
        views = open_views(settings)
    except BaseException:
        for service in services.values():
            service.close()
        raise
    return Stores(services, views)


def open_worker_stores(settings: Settings, subscriber_names: Collection[str]) -> Stores:
    """What a worker of ``subscriber_names`` runs against: the view store,
    the services whose databases it needs (``hosting.worker_databases``),
    and the others as stand-ins in memory that only decode the events the
    broker brings of them (``ShopService(decoding_only=True)``)."""
    stores = open_stores(settings, worker_databases(settings, subscriber_names))
    services: dict[str, Service] = {}
    try:
        for service_class in SERVICE_CLASSES:
            opened = stores.services.get(service_class.name)
            services[service_class.name] = (
                service_class(settings, decoding_only=True)
                if opened is None
                else opened
            )
    except BaseException:
        stores.close()
        raise
    return Stores(services, stores.views)


@dataclass(frozen=True)
class ShopParts(ClosedOnExit):
    """Everything a shop is, built and wired by ``bootstrap``; ``close``
    stops its subscribers and releases its connections."""

    settings: Settings
    carts: Carts
    orders: Orders
    inventory: Inventory
    services: dict[str, Service]
    views: ViewStore
    queries: ShopQueries
    audit: Audit
    payment_deadlines: PaymentDeadlineTicker
    subscribers: Subscribers
    dead_letters: DeadLetters

    def close(self) -> None:
        # The subscribers first: they write to the services and the views.
        self.subscribers.stop()
        _release(self.services, self.views)


def _release(services: Mapping[str, Service], views: ViewStore) -> None:
    """Closes the services' connections and the view store's."""
    for service in services.values():
        service.close()
    views.engine.dispose()


def bootstrap(
    settings: Settings, *, hosting: Hosting, clock: Clock = system_clock
) -> ShopParts:
    """A shop's whole graph over the store ``settings`` names, its subscribers
    started as ``hosting`` says; ``clock`` is the time the payment-deadline
    ticker judges deadlines by. Should a part fail to open or start, what was
    opened is released before the error propagates."""
    stores = open_stores(settings)
    try:
        services = stores.services
        orders = _service(services, Orders)
        payment_deadlines = PaymentDeadlineTicker(orders, stores.views, clock)
        subscribers = Subscribers(settings, services, stores.views, payment_deadlines)
        parts = ShopParts(
            settings=settings,
            carts=_service(services, Carts),
            orders=orders,
            inventory=_service(services, Inventory),
            services=services,
            views=stores.views,
            queries=ShopQueries(stores.views),
            audit=Audit(stores.views, services),
            payment_deadlines=payment_deadlines,
            subscribers=subscribers,
            dead_letters=DeadLetters(services, stores.views, subscribers.subscribers),
        )
    except BaseException:
        stores.close()
        raise
    try:
        if hosting == "embedded":
            subscribers.start_in_helper()
        elif hosting == "threads":
            subscribers.start()
    except BaseException:
        parts.close()
        raise
    return parts


def _service(services: Mapping[str, Service], kind: type[S]) -> S:
    service = services[kind.name]
    assert isinstance(service, kind)
    return service
