"""The shop's topology, declared once as a value made of classes: its services
(each with the aggregates whose events its log holds), its process managers
(the service that reacts and records in its own store, the service it
follows) and its read models (the class, the service it follows), in the
order they are listed to users: process managers first, then read models.

In the spirit of eventsourcing's ``System(pipes=[[A, B], ...])``, but with
names: a subscriber's name is its stored identity (its tracking rows, lock,
dead letters), so it is declared, never derived.

What a process manager reacts to is derived, not declared: the event types of
its service's ``@handles`` reactions whose aggregate belongs to the service it
follows. A reaction added to a process service is so picked up here. One to an
event of a service that none of its process managers follows is refused when
the topology is declared (:class:`TopologyError`), as is a read model that
handles another service's events, or whose ``follows`` (the log name the
projections layer keys its stored positions by: it may not name the
application's classes) is not the service the topology says it follows.

Hosting, ``eventshop topology``, ``status`` and rebuilding read it; the
command line's parser, which must stay light, has its own tuple of names
(``application.service_names``), held to this one by a test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.domain import Aggregate

from application.services.base import ShopService
from application.services.carts import Carts
from application.services.inventory import Inventory
from application.services.orders import Orders
from application.services.process import ProcessService, Subscription
from domain.allocation import Allocation
from domain.cart import Cart
from domain.command_receipt import CommandReceipt
from domain.customer import CustomerErasure
from domain.dead_letter import DeadLetter
from domain.inventory import InventoryItem
from domain.order import Order
from projections.audit.indexes import (
    AuditIndex,
    CartsAudit,
    InventoryAudit,
    OrdersAudit,
)
from projections.read_model import ReadModel
from projections.read_models.carts import CartSummaries
from projections.read_models.catalog import READ_MODELS
from projections.read_models.customer_orders import CustomerOrderHistory
from projections.read_models.orders import OrderSummaries
from projections.read_models.payment_deadlines import PaymentDeadlines
from projections.read_models.sales import ProductSales
from projections.read_models.stock import StockLevels

AnyService = type[ShopService[Any, Any]]


class TopologyError(TypeError):
    """A topology that does not hold together (raised as it is declared)."""


@dataclass(frozen=True)
class Service:
    """A service, and the aggregates whose events its log holds."""

    application: AnyService
    owns: tuple[type[Aggregate], ...]

    @property
    def name(self) -> str:
        return self.application.name

    def owns_event(self, event_type: type) -> bool:
        return any(issubclass(event_type, aggregate.Event) for aggregate in self.owns)


@dataclass(frozen=True)
class ProcessManager:
    """A subscriber through which ``service`` reacts to the log of ``follows``,
    recording its effects and its position in its own store."""

    name: str
    service: type[ProcessService[Any, Any]]
    follows: AnyService


@dataclass(frozen=True)
class ReadModelOf:
    """A read model, fed by the log of ``follows``."""

    read_model: type[ReadModel]
    follows: AnyService

    @property
    def name(self) -> str:
        return self.read_model.name


@dataclass(frozen=True)
class SubscriberSpec:
    """What a subscriber reads, without anything to run it with (the shape
    ``application.subscribers.status`` shows)."""

    name: str
    follows: str
    topics: frozenset[str]


class Topology:
    """Services, process managers and read models, checked to hold together."""

    def __init__(
        self,
        services: Sequence[Service],
        process_managers: Sequence[ProcessManager],
        read_models: Sequence[ReadModelOf],
    ) -> None:
        self.services = tuple(services)
        self.process_managers = tuple(process_managers)
        self.read_models = tuple(read_models)
        self._services = {service.application: service for service in self.services}
        if len(self._services) != len(self.services):
            raise TopologyError("a service is declared twice")
        self._check_names()
        self._event_types = self._derive_event_types()
        self._check_read_models()

    # -- what it says ----------------------------------------------------------

    @property
    def service_names(self) -> tuple[str, ...]:
        return tuple(service.name for service in self.services)

    def service_named(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise LookupError(
            f"no service named {name!r} (known: {', '.join(self.service_names)})"
        )

    def event_types(self, manager: ProcessManager) -> tuple[type, ...]:
        """The event types ``manager`` reacts to, as its service's reactions
        say."""
        return self._event_types[manager.name]

    def subscription(self, manager: ProcessManager) -> Subscription:
        """What a ``ProcessSubscriber`` of ``manager`` reads."""
        return Subscription(
            manager.name, manager.follows.name, self.event_types(manager)
        )

    @property
    def read_model_classes(self) -> tuple[type[ReadModel], ...]:
        return tuple(entry.read_model for entry in self.read_models)

    def read_model_named(self, name: str) -> ReadModelOf:
        for entry in self.read_models:
            if entry.name == name:
                return entry
        known = ", ".join(entry.name for entry in self.read_models)
        raise LookupError(f"no projection named {name!r} (known: {known})")

    def follows(self, read_model: type[ReadModel]) -> Service:
        """The service whose log feeds ``read_model``."""
        for entry in self.read_models:
            if entry.read_model is read_model:
                return self._services[entry.follows]
        raise LookupError(f"read model {read_model.name!r} is not in the topology")

    def declared(self) -> list[SubscriberSpec]:
        """Every subscriber: process managers first, then read models, in
        order of declaration."""
        return [
            *(
                SubscriberSpec(manager.name, manager.follows.name, subscription.topics)
                for manager in self.process_managers
                for subscription in (self.subscription(manager),)
            ),
            *(
                SubscriberSpec(
                    entry.name, entry.follows.name, entry.read_model.topics()
                )
                for entry in self.read_models
            ),
        ]

    def is_process_manager(self, subscriber: str) -> bool:
        return any(manager.name == subscriber for manager in self.process_managers)

    def is_audit_index(self, subscriber: str) -> bool:
        return any(
            entry.name == subscriber and issubclass(entry.read_model, AuditIndex)
            for entry in self.read_models
        )

    # -- checks, as it is declared ---------------------------------------------

    def _service(self, application: AnyService, role: str) -> Service:
        service = self._services.get(application)
        if service is None:
            raise TopologyError(
                f"{role} names {application.__name__}, which is not one of the "
                f"topology's services ({', '.join(self.service_names)})"
            )
        return service

    def _check_names(self) -> None:
        names = [
            *(manager.name for manager in self.process_managers),
            *(entry.name for entry in self.read_models),
        ]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise TopologyError(f"subscriber names declared twice: {', '.join(twice)}")

    def _derive_event_types(self) -> dict[str, tuple[type, ...]]:
        derived: dict[str, list[type]] = {
            manager.name: [] for manager in self.process_managers
        }
        reacting = dict.fromkeys(manager.service for manager in self.process_managers)
        for process_service in reacting:
            self._service(process_service, f"a process manager of {process_service}")
            managers = [
                (
                    manager,
                    self._service(manager.follows, f"process manager {manager.name}"),
                )
                for manager in self.process_managers
                if manager.service is process_service
            ]
            for event_type in process_service.event_types():
                followed = [
                    manager
                    for manager, source in managers
                    if source.owns_event(event_type)
                ]
                if not followed:
                    raise TopologyError(self._unconnected(process_service, event_type))
                for manager in followed:
                    derived[manager.name].append(event_type)
        for manager in self.process_managers:
            if not derived[manager.name]:
                raise TopologyError(
                    f"process manager {manager.name} follows {manager.follows.name}, "
                    f"but {manager.service.__name__} reacts to none of its events"
                )
        return {name: tuple(types) for name, types in derived.items()}

    def _unconnected(self, process_service: type, event_type: type) -> str:
        owners = [
            service.name for service in self.services if service.owns_event(event_type)
        ]
        of = (
            f"an event of {' or '.join(owners)}"
            if owners
            else "an event of no service in the topology"
        )
        return (
            f"{process_service.__name__} reacts to {event_type.__qualname__}, {of}, "
            f"but none of its process managers follows "
            f"{'that service' if owners else 'its log'}: declare one in the "
            "topology, or remove the reaction"
        )

    def _check_read_models(self) -> None:
        for entry in self.read_models:
            source = self._service(entry.follows, f"read model {entry.name}")
            if entry.read_model.follows != source.name:
                raise TopologyError(
                    f"read model {entry.name} keys its positions by the log "
                    f"{entry.read_model.follows!r}, but the topology feeds it "
                    f"from {source.name}"
                )
            foreign = _names(
                kind
                for kind in entry.read_model.event_types()
                if not source.owns_event(kind)
            )
            if foreign:
                raise TopologyError(
                    f"read model {entry.name} follows {source.name}, but handles "
                    f"events of another service: {foreign}"
                )


def _names(event_types: Iterable[type]) -> str:
    return ", ".join(kind.__qualname__ for kind in event_types)


TOPOLOGY = Topology(
    services=(
        # Every service's store holds the receipts of the commands given to it
        # with an idempotency key; a process service's also its dead letters.
        Service(Carts, owns=(Cart, CommandReceipt)),
        Service(Orders, owns=(Order, CustomerErasure, DeadLetter, CommandReceipt)),
        Service(
            Inventory, owns=(InventoryItem, Allocation, DeadLetter, CommandReceipt)
        ),
    ),
    process_managers=(
        ProcessManager("checkout", Orders, follows=Carts),
        ProcessManager("confirmation", Orders, follows=Inventory),
        ProcessManager("allocation", Inventory, follows=Orders),
    ),
    read_models=(
        ReadModelOf(CartSummaries, follows=Carts),
        ReadModelOf(OrderSummaries, follows=Orders),
        ReadModelOf(CustomerOrderHistory, follows=Orders),
        ReadModelOf(StockLevels, follows=Inventory),
        ReadModelOf(ProductSales, follows=Orders),
        ReadModelOf(PaymentDeadlines, follows=Orders),
        ReadModelOf(CartsAudit, follows=Carts),
        ReadModelOf(OrdersAudit, follows=Orders),
        ReadModelOf(InventoryAudit, follows=Inventory),
    ),
)

# The view store creates the tables of the projections layer's own list (it
# may not import this module): the two must name the same read models.
if TOPOLOGY.read_model_classes != READ_MODELS:
    raise TopologyError(
        "the topology's read models are not projections.read_models.catalog's "
        f"READ_MODELS: {_names(TOPOLOGY.read_model_classes)} != {_names(READ_MODELS)}"
    )
