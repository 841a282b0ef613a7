"""The ``Shop`` facade: the one object Python callers need.

It takes ids (as ``UUID`` or their text), SKUs, quantities and prices, and returns
ids and immutable views; it never hands out an aggregate. Every method that
changes something is one command on one aggregate, retried if it loses a race.
It only turns its arguments into settings and values: ``application.bootstrap``
builds and wires the parts it delegates to.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import TypedDict, TypeVar, Unpack
from uuid import UUID

from application.bootstrap import Hosting, Service, bootstrap
from application.closing import ClosedOnExit
from application.config import VIEWS, FaultPolicy, Settings
from application.persistence.budget import time_budget
from application.services.aggregate_views import CartView, OrderView, StockView
from application.services.audit_metadata import EventMetadata, acting_as
from application.services.carts import Recipient
from application.services.idempotency import KeyedCommand, run_once
from application.services.storage import storage_errors
from application.subscribers.payment_deadline_ticker import Clock, system_clock
from application.subscribers.rebuild import rebuild_projection
from domain.command_receipt import CommandReceipt
from domain.errors import CommandOutcomeUnknownError
from domain.values import order_id_for_cart, parse_id, parse_text
from projections.shadow_rebuild import ProgressCallback, RebuildMode, RebuildReport

DEFAULT_CANCELLATION_REASON = "cancelled on request"
R = TypeVar("R")


def _no_result(_: CommandReceipt) -> None:
    """A repeated command that returns nothing returns nothing again."""


class Action(TypedDict, total=False):
    """Who a command is done by and which user action it belongs to; each
    command method takes them as keyword arguments (see :func:`acting_as`)."""

    actor: str
    correlation_id: UUID


class Shop(ClosedOnExit):
    """Cart, Order and Inventory services over one store.

    ``Shop()`` keeps its data in SQLite files under ``./eventshop-data`` (or
    ``$EVENTSHOP_DATABASE_URL``); ``Shop(database_url="postgresql://...")`` uses
    PostgreSQL; ``Shop(data_dir=...)`` puts the SQLite files elsewhere.
    ``carts_database_url``, ``orders_database_url``, ``inventory_database_url``
    and ``views_database_url`` (or ``$EVENTSHOP_CARTS_DATABASE_URL`` and so on)
    give a service, or the views, a database of its own; the engines may be
    mixed. ``broker_fed`` names the subscribers (or ``["all"]``) that read the
    service they follow from its stream on the NATS JetStream server at
    ``nats_url`` (``$EVENTSHOP_BROKER_FED``, ``$EVENTSHOP_NATS_URL``); the shop
    then hosts those services' relays too.

    With ``subscribers="embedded"`` (the default) the shop hosts the read
    models and process managers itself, in a helper process it starts and
    stops, so that they run beside its commands instead of taking their turns
    (see ``application.subscribers.helper_process``); with ``"threads"`` it hosts them
    in threads of this process (what tests that patch a handler, or look at
    the runners, need); with ``"workers"`` they are left to ``eventshop
    worker`` processes and this shop only writes and reads.

    Two ways to read: ``get_cart``, ``get_order`` and ``get_stock`` load the
    aggregate (strongly consistent: they see every command that returned);
    ``shop.queries`` reads the views (eventually consistent: call
    ``wait_until_processed()`` first to see your own writes).

    ``clock`` is the time payment deadlines are judged by (embedded, the shop
    fires them every ``settings.deadline_tick_seconds``; tests inject a clock
    and call ``shop.payment_deadlines.fire_due()`` themselves).

    ``command_timeout_seconds`` (default ``settings.command_timeout_seconds``,
    10 s, or ``$EVENTSHOP_COMMAND_TIMEOUT_SECONDS``) bounds every command: it
    returns, or raises a ``StorageUnavailableError`` saying whether it may have
    been applied (see ``was_applied``).

    ``fault_policies`` says, per subscriber name, what it does when a handler
    keeps failing (see ``FaultPolicy``); ``shop.dead_letters`` lists, retries
    and discards the events parked.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        data_dir: str | Path | None = None,
        carts_database_url: str | None = None,
        orders_database_url: str | None = None,
        inventory_database_url: str | None = None,
        views_database_url: str | None = None,
        nats_url: str | None = None,
        broker_fed: Collection[str] | None = None,
        settings: Settings | None = None,
        subscribers: Hosting = "embedded",
        clock: Clock = system_clock,
        fault_policies: Mapping[str, FaultPolicy] | None = None,
        command_timeout_seconds: float | None = None,
    ) -> None:
        settings = settings or Settings.from_url(
            database_url,
            data_dir=data_dir,
            part_urls={
                "Carts": carts_database_url,
                "Orders": orders_database_url,
                "Inventory": inventory_database_url,
                VIEWS: views_database_url,
            },
            nats_url=nats_url,
            broker_fed=broker_fed,
        )
        if command_timeout_seconds is not None:
            settings = replace(
                settings, command_timeout_seconds=command_timeout_seconds
            )
        if fault_policies:
            settings = replace(
                settings, fault_policies={**settings.fault_policies, **fault_policies}
            )
        self._parts = parts = bootstrap(settings, hosting=subscribers, clock=clock)
        self._clock = clock
        # Plain attributes, not properties: commands read them on every call,
        # and a test may replace ``settings`` (its command timeout) on the fly.
        self.settings = parts.settings
        self.carts = parts.carts
        self.orders = parts.orders
        self.inventory = parts.inventory
        self.services: dict[str, Service] = parts.services
        self.views = parts.views
        self.queries = parts.queries
        self.audit = parts.audit
        self.payment_deadlines = parts.payment_deadlines
        self.subscribers = parts.subscribers
        self.dead_letters = parts.dead_letters

    # -- products and stock --------------------------------------------------

    def register_product(
        self,
        sku: str,
        name: str,
        price: Decimal | int | str,
        *,
        idempotency_key: str | None = None,
        **action: Unpack[Action],
    ) -> str:
        with self._command(action):
            self._once(
                self.inventory,
                idempotency_key,
                KeyedCommand(
                    "register_product",
                    {"sku": sku, "name": name, "price": price},
                    lambda: self.inventory.register_product(sku, name, price),
                    _no_result,
                ),
            )
        return sku

    def receive_stock(
        self,
        sku: str,
        quantity: int,
        *,
        idempotency_key: str | None = None,
        **action: Unpack[Action],
    ) -> None:
        with self._command(action):
            self._once(
                self.inventory,
                idempotency_key,
                KeyedCommand(
                    "receive_stock",
                    {"sku": sku, "quantity": quantity},
                    lambda: self.inventory.receive_stock(sku, quantity),
                    _no_result,
                ),
            )

    def adjust_stock(
        self,
        sku: str,
        counted: int,
        reason: str,
        *,
        idempotency_key: str | None = None,
        **action: Unpack[Action],
    ) -> None:
        with self._command(action):
            self._once(
                self.inventory,
                idempotency_key,
                KeyedCommand(
                    "adjust_stock",
                    {"sku": sku, "counted": counted, "reason": reason},
                    lambda: self.inventory.adjust_stock(sku, counted, reason),
                    _no_result,
                ),
            )

    def get_stock(self, sku: str) -> StockView:
        with self._command({}):
            return self.inventory.get_stock(sku)

    # -- carts ---------------------------------------------------------------

    def open_cart(
        self,
        customer_id: str,
        *,
        idempotency_key: str | None = None,
        **action: Unpack[Action],
    ) -> UUID:
        with self._command(action):
            return self._once(
                self.carts,
                idempotency_key,
                KeyedCommand(
                    "open_cart",
                    {"customer_id": customer_id},
                    lambda: self.carts.open_cart(customer_id),
                    # The cart the first try opened (the only aggregate it saved).
                    lambda receipt: receipt.saved_ids[0],
                ),
            )

    def add_to_cart(
        self,
        cart_id: UUID | str,
        sku: str,
        quantity: int,
        *,
        idempotency_key: str | None = None,
        **action: Unpack[Action],
    ) -> None:
        """Adds units of a registered product at its current price."""
        cart = parse_id(cart_id, "cart_id")

        def add() -> None:
            price = self.inventory.get_stock(sku).price
            self.carts.add_item(cart, sku, quantity, price)

        with self._command(action):
            self._once(
                self.carts,
                idempotency_key,
                KeyedCommand(
                    "add_to_cart",
                    {"cart_id": cart, "sku": sku, "quantity": quantity},
                    add,
                    _no_result,
                ),
            )

    def change_quantity(
        self,
        cart_id: UUID | str,
        sku: str,
        quantity: int,
        *,
        idempotency_key: str | None = None,
        **action: Unpack[Action],
    ) -> None:
        cart = parse_id(cart_id, "cart_id")
        with self._command(action):
            self._once(
                self.carts,
                idempotency_key,
                KeyedCommand(
                    "change_quantity",
                    {"cart_id": cart, "sku": sku, "quantity": quantity},
                    lambda: self.carts.change_quantity(cart, sku, quantity),
                    _no_result,
                ),
            )

    def remove_from_cart(
        self,
        cart_id: UUID | str,
        sku: str,
        *,
        idempotency_key: str | None = None,
        **action: Unpack[Action],
    ) -> None:
        cart = parse_id(cart_id, "cart_id")
        with self._command(action):
            self._once(
                self.carts,
                idempotency_key,
                KeyedCommand(
                    "remove_from_cart",
                    {"cart_id": cart, "sku": sku},
                    lambda: self.carts.remove_item(cart, sku),
                    _no_result,
                ),
            )

    def abandon_cart(
        self,
        cart_id: UUID | str,
        *,
        idempotency_key: str | None = None,
        **action: Unpack[Action],
    ) -> None:
        cart = parse_id(cart_id, "cart_id")
        with self._command(action):
            self._once(
                self.carts,
                idempotency_key,
                KeyedCommand(
                    "abandon_cart",
                    {"cart_id": cart},
                    lambda: self.carts.abandon(cart),
                    _no_result,
                ),
            )

    def checkout(
        self,
        cart_id: UUID | str,
        *,
        name: str | None = None,
        email: str | None = None,
        address: str | None = None,
        idempotency_key: str | None = None,
        **action: Unpack[Action],
    ) -> UUID:
        """Checks the cart out and returns the id its order has (or will have).

        ``name``, ``email`` and ``address`` say where the order goes (all
        three, or none for an order with no delivery details); they are the
        customer's personal data, stored only encrypted with the customer's
        key. A forgotten customer's cart is refused (``CustomerForgottenError``).
        They are left out of the idempotency key's fingerprint, which would
        outlive a forget: a repeat with other details returns the first order."""
        cart = parse_id(cart_id, "cart_id")
        recipient = None
        if (name, email, address) != (None, None, None):
            recipient = Recipient(name=name, email=email, address=address)
        with self._command(action):
            return self._once(
                self.carts,
                idempotency_key,
                KeyedCommand(
                    "checkout",
                    {"cart_id": cart},
                    lambda: self.carts.check_out(cart, recipient),
                    lambda _: order_id_for_cart(cart),
                ),
            )

    def get_cart(self, cart_id: UUID | str) -> CartView:
        with self._command({}):
            return self.carts.get_cart(parse_id(cart_id, "cart_id"))

    # -- customers -----------------------------------------------------------

    def forget_customer(
        self,
        customer_id: str,
        *,
        idempotency_key: str | None = None,
        **action: Unpack[Action],
    ) -> None:
        """Forgets the customer: records it (``CustomerErasure.Forgotten``,
        with the actor and time of every event), then deletes their key, so
        their name, e-mail and address read as ``domain.values.FORGOTTEN``
        wherever stored. Their orders stay; new carts and checkouts for them
        are refused (``CustomerForgottenError``). Forgetting again is harmless."""
        customer = parse_text(customer_id, "customer_id")
        with self._command(action):
            self._once(
                self.orders,
                idempotency_key,
                KeyedCommand(
                    "forget_customer",
                    {"customer_id": customer},
                    lambda: self.orders.forget_customer(customer),
                    _no_result,
                ),
            )

    # -- orders --------------------------------------------------------------

    def pay_order(
        self,
        order_id: UUID | str,
        *,
        idempotency_key: str | None = None,
        **action: Unpack[Action],
    ) -> None:
        order = parse_id(order_id, "order_id")
        with self._command(action):
            self._once(
                self.orders,
                idempotency_key,
                KeyedCommand(
                    "pay_order",
                    {"order_id": order},
                    lambda: self.orders.pay(order),
                    _no_result,
                ),
            )

    def ship_order(
        self,
        order_id: UUID | str,
        *,
        idempotency_key: str | None = None,
        **action: Unpack[Action],
    ) -> None:
        order = parse_id(order_id, "order_id")
        with self._command(action):
            self._once(
                self.orders,
                idempotency_key,
                KeyedCommand(
                    "ship_order",
                    {"order_id": order},
                    lambda: self.orders.ship(order),
                    _no_result,
                ),
            )

    def cancel_order(
        self,
        order_id: UUID | str,
        reason: str = DEFAULT_CANCELLATION_REASON,
        *,
        idempotency_key: str | None = None,
        **action: Unpack[Action],
    ) -> None:
        order = parse_id(order_id, "order_id")
        with self._command(action):
            self._once(
                self.orders,
                idempotency_key,
                KeyedCommand(
                    "cancel_order",
                    {"order_id": order, "reason": reason},
                    lambda: self.orders.cancel(order, parse_text(reason, "reason")),
                    _no_result,
                ),
            )

    @contextmanager
    def _command(self, action: Action) -> Iterator[None]:
        """One command: its audit metadata, its time, and database trouble
        told as a ``StorageUnavailableError``."""
        seconds = self.settings.command_timeout_seconds
        with storage_errors(seconds), time_budget(seconds), acting_as(**action):
            yield

    def _once(
        self,
        service: Service,
        idempotency_key: str | None,
        command: KeyedCommand[R],
    ) -> R:
        """Runs a command that writes to ``service`` once per idempotency key
        (see ``application.services.idempotency``)."""
        return run_once(
            service,
            idempotency_key,
            command,
            now=self._clock(),
            lasting=self.settings.idempotency_ttl,
        )

    def was_applied(self, error: CommandOutcomeUnknownError) -> bool:
        """Whether the write of a command that ended in ``error`` is stored,
        compared byte for byte with what it sent. If not, nothing of it is,
        and running the command again is safe; if so, it must not be run
        again. Raises a ``StorageUnavailableError`` while the database is
        still away."""
        with self._command({}):
            for service in self.services.values():
                if service.holds_write(error.written):
                    return True
        return False

    def acting_as(
        self, actor: str | None = None, correlation_id: UUID | None = None
    ) -> AbstractContextManager[EventMetadata]:
        """A block of calls that is one user action by ``actor``: every event
        they record, and every reaction to those, carries the same correlation
        id (``correlation_id``, or a new one)."""
        return acting_as(actor, correlation_id)

    def get_order(self, order_id: UUID | str) -> OrderView:
        with self._command({}):
            return self.orders.get_order(parse_id(order_id, "order_id"))

    # -- housekeeping --------------------------------------------------------

    def wait_until_processed(
        self, timeout: float = 10.0, only: Collection[str] | None = None
    ) -> None:
        """Returns once every subscriber (read model, process manager), or those
        named in ``only``, has handled every event written before the call and
        every reaction those caused in turn. Raises TimeoutError otherwise."""
        self.subscribers.wait_until_processed(timeout, only)

    def wait_until_started(self, timeout: float = 30.0) -> None:
        """Returns once every subscriber this shop hosts is running or standing
        by (at once with ``subscribers="workers"``, which hosts none). Raises
        TimeoutError otherwise."""
        self.subscribers.wait_until_started(timeout)

    def log_heads(self) -> dict[str, int]:
        """Each service's newest notification-log position."""
        return {name: service.log_head() for name, service in self.services.items()}

    def rebuild(
        self,
        name: str,
        *,
        mode: RebuildMode = "switch-if-equal",
        progress: ProgressCallback | None = None,
    ) -> list[RebuildReport]:
        """Rebuilds the read model ``name`` (or ``"all"``) from the event log
        into new tables while the current ones keep serving, compares them and,
        as ``mode`` says, switches readers over (see ``projections.shadow_rebuild``)."""
        return rebuild_projection(self._parts, name, mode=mode, progress=progress)

    def close(self) -> None:
        self._parts.close()
