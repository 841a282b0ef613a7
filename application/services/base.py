"""What every eventshop service shares: storage set-up, transcodings, loading
with typed not-found errors, and commands retried when they lose a race."""

from __future__ import annotations

import logging
import random
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
)
from eventsourcing.domain import (
    Aggregate,
    DomainEventProtocol,
    MutableOrImmutableAggregate,
)
from eventsourcing.persistence import (
    JSONTranscoder,
    Mapper,
    PersistenceError,
    RecordConflictError,
    Recording,
    StoredEvent,
    Transcoding,
)

from application.config import Settings
from application.persistence.encryption_check import check_stored_encryption
from application.privacy.key_store import CustomerKeyStore
from application.privacy.sealing import SealedDeliveryDetails
from application.privacy.shared_keys import SharedKeyStores
from application.services.audit_metadata import MetadataMapper
from application.services.idempotency import (
    ReceiptTakenError,
    pending_receipt,
    receipt_to_save,
    taken_meanwhile,
)
from application.services.storage import storage_errors
from domain.errors import ConcurrencyConflictError, NotFoundError
from domain.values import Line

log = logging.getLogger(__name__)

A = TypeVar("A", bound=Aggregate)
K = TypeVar("K")

# Enough for eight writers hammering one aggregate (see the concurrency tests);
# beyond that a caller is better told than kept waiting.
MAX_ATTEMPTS = 25


class LineAsDict(Transcoding):
    type = Line
    name = "line"

    def encode(self, obj: Line) -> dict[str, Any]:
        return {"sku": obj.sku, "quantity": obj.quantity, "unit_price": obj.unit_price}

    def decode(self, data: dict[str, Any]) -> Line:
        return Line(
            sku=data["sku"],
            quantity=data["quantity"],
            unit_price=Decimal(data["unit_price"]),
        )


class ShopService(Application[UUID], Generic[A, K]):
    """An eventsourcing application holding one kind of aggregate.

    Callers name an aggregate by a key of type K: its id for carts and orders,
    the natural key (the SKU) for inventory items, whose ids derive from it.
    """

    aggregate_class: ClassVar[type[Aggregate]]

    def __init__(
        self, settings: Settings | None = None, *, decoding_only: bool = False
    ) -> None:
        """The service on the database ``settings`` give it; or, if
        ``decoding_only``, a stand-in held in memory, which stores nothing
        and decodes the service's stored events as the service does (for a
        subscriber fed by the broker in a process without that database)."""
        self.settings = settings or Settings.from_url()
        env = (
            self.settings.decoding_env()
            if decoding_only
            else self.settings.service_env(self.name)
        )
        # Starting is bounded by the connect timeout, not a command's time.
        with storage_errors(self.settings.connect_timeout_seconds):
            # Taken after the library's set-up (whose connection trouble is
            # the one to tell first); the transcodings ask for it when used.
            self.customer_keys: CustomerKeyStore | None = None
            try:
                super().__init__(env=env)
                self.customer_keys = SharedKeyStores.take(self.settings)
                if not decoding_only:
                    # A wrong or missing key is told now, not as garbage later.
                    check_stored_encryption(
                        self.name,
                        self.mapper.cipher,
                        self.recorder,
                        None if self.snapshots is None else self.snapshots.recorder,
                    )
            except BaseException:
                # Its factory may have taken a share of the process's pool.
                factory = getattr(self, "factory", None)
                if factory is not None:
                    factory.close()
                self._release_customer_keys()
                raise

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release_customer_keys()

    def _release_customer_keys(self) -> None:
        keys, self.customer_keys = self.customer_keys, None
        if keys is not None:
            SharedKeyStores.release(keys)

    def keys(self) -> CustomerKeyStore:
        """The customers' keys, while the service is open."""
        if self.customer_keys is None:
            raise RuntimeError(f"{self.name} is closed")
        return self.customer_keys

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        # A snapshot only shortens later loads, and the command's events are
        # stored by now: failing the command for it would report a stored
        # write as failed.
        try:
            super()._take_snapshots(processing_event)
        except PersistenceError as error:
            log.warning("%s: snapshot not taken: %s", self.name, error)

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        """Saves, with the receipt of the command running now if it was given
        an idempotency key (see ``application.services.idempotency``): in the
        same transaction, so a crash keeps both or neither."""
        pending = pending_receipt(self.name)
        if pending is None:
            return super().save(*objs, **kwargs)
        receipt = receipt_to_save(self, pending, objs)
        try:
            recordings = super().save(*objs, receipt, **kwargs)
        except RecordConflictError:
            if taken_meanwhile(self, receipt):
                raise ReceiptTakenError(pending.key) from None
            raise
        pending.saved = True
        return recordings

    def construct_mapper(self) -> Mapper[UUID]:
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=MetadataMapper
        )

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(LineAsDict())
        transcoder.register(SealedDeliveryDetails(self.keys))

    @abstractmethod
    def aggregate_id(self, key: K) -> UUID:
        """The id of the aggregate a key names."""

    @abstractmethod
    def not_found(self, key: K) -> NotFoundError:
        """The typed error for a key this service holds nothing under."""

    def holds_write(self, written: Sequence[tuple[UUID, int, str, bytes]]) -> bool:
        """Whether exactly these events (aggregate id, version, topic, state)
        are stored here; False if none is, or another writer's are."""
        stored = [StoredEvent(*event) for event in written]
        check = getattr(self.recorder, "stored_already", None)
        if check is None:
            # Only PostgreSQL loses a write's reply: SQLite has no connection.
            return False
        try:
            return check(stored) is not None
        except RecordConflictError:
            return False

    def log_head(self) -> int:
        """Position of the newest event in this service's notification log."""
        return self.recorder.max_notification_id() or 0

    def _load(self, key: K) -> A:
        try:
            aggregate: Aggregate = self.repository.get(self.aggregate_id(key))
        except AggregateNotFoundError:
            raise self.not_found(key) from None
        if not isinstance(aggregate, self.aggregate_class):
            raise self.not_found(key)
        return aggregate  # type: ignore[return-value]

    def _change(self, key: K, command: Callable[[A], object]) -> A:
        """Loads the aggregate, runs the command and saves what it recorded.

        Another writer may save the same aggregate between our load and our save;
        the store then refuses our events (same version). We reload and run the
        command again, because its checks must see the newer state.
        """
        for attempt in range(1, MAX_ATTEMPTS + 1):
            aggregate = self._load(key)
            command(aggregate)
            try:
                self.save(aggregate)
            except RecordConflictError:
                if attempt == MAX_ATTEMPTS:
                    break
                # Jitter spreads the retries of writers that collided together.
                time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
            else:
                return aggregate
        raise ConcurrencyConflictError(self.aggregate_id(key), MAX_ATTEMPTS)

    def _add(self, aggregate: A) -> bool:
        """Saves a new aggregate; False when one with its id is already stored
        (a natural key registered twice, or a redelivered creation)."""
        try:
            self.save(aggregate)
        except RecordConflictError:
            return False
        return True


# Application.__init_subclass__ does not chain up to Generic's, which is what
# records a class's type parameters; without this, ShopService[Cart, UUID]
# would be refused at run time.
ShopService.__parameters__ = (A, K)  # type: ignore[attr-defined]
