"""Audit over the event log, for Python callers (``shop.audit``) and the CLI
(which renders what it returns: ``application.cli.audit_rendering``).

Queries by who, what and when read the audit index (a projection, so
eventually consistent: ``shop.wait_until_processed()`` first for read-your-writes);
time travel rebuilds an aggregate from the event store itself. Every value a
caller supplies is parsed into a typed value first (typed errors otherwise) and
reaches the database as a bound parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate

from application.service_names import SERVICE_NAMES
from domain.errors import InvalidInputError, NotFoundError
from domain.values import (
    parse_id,
    parse_moment,
    parse_sku,
    parse_text,
    parse_whole_number,
)
from projections.audit.indexes import event_types
from projections.audit.queries import (
    AuditEvent,
    EventFilter,
    Page,
    StockMovement,
    TraceNode,
    find_events,
    history,
    stock_movements,
    trace,
)
from projections.store import ViewStore


class AggregateNotInLogError(NotFoundError):
    """No service's log holds an aggregate with this id (at that version or time)."""

    def __init__(self, aggregate_id: UUID, detail: str = "") -> None:
        self.aggregate_id = aggregate_id
        super().__init__(f"no aggregate {aggregate_id} in any log{detail}")


@dataclass(frozen=True)
class AggregateState:
    """An aggregate as it was at one version, rebuilt from its stored events."""

    service: str
    aggregate_id: UUID
    aggregate_type: str
    version: int
    as_of: datetime
    state: dict[str, Any]


class Audit:
    """``shop.audit``: history, filtered events, traces, stock movements and time
    travel over a shop's stored events: those its ``services`` hold, as the
    audit index in its ``views`` knows them."""

    def __init__(
        self, views: ViewStore, services: Mapping[str, Application[Any]]
    ) -> None:
        self._views = views
        self._services = services

    def history(self, aggregate_id: UUID | str) -> tuple[AuditEvent, ...]:
        """Every event of one aggregate (of any service), oldest first."""
        wanted = parse_id(aggregate_id, "aggregate_id")
        for service in SERVICE_NAMES:
            events = history(self._views, service, wanted)
            if events:
                return events
        return ()

    def events(
        self,
        *,
        event_types: Sequence[str] = (),
        services: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        sku: str | None = None,
        customer_id: str | None = None,
        newest_first: bool = True,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """One page of events matching every filter given; pass the page's
        ``next_cursor`` back to get the next one."""
        wanted = EventFilter(
            services=tuple(map(_parse_service, _names(services, "services"))),
            event_types=tuple(
                map(_parse_event_type, _names(event_types, "event_types"))
            ),
            since=_parse_time(since, "since"),
            until=_parse_time(until, "until"),
            actor=None if actor is None else parse_text(actor, "actor"),
            sku=None if sku is None else parse_sku(sku),
            customer_id=None
            if customer_id is None
            else parse_text(customer_id, "customer_id"),
        )
        return find_events(
            self._views,
            wanted,
            newest_first=_parse_flag(newest_first, "newest_first"),
            # A bad limit or cursor is refused by the query, which knows the
            # page bound and the cursor's shape.
            limit=limit,
            cursor=cursor,
        )

    def trace(self, correlation_id: UUID | str) -> tuple[TraceNode, ...]:
        """Everything one user action caused, across services, as trees of
        cause and effect in the order things happened."""
        return trace(self._views, parse_id(correlation_id, "correlation_id"))

    def stock_movements(self, sku: str) -> tuple[StockMovement, ...]:
        """Every change to a SKU's stock with its running balance."""
        return stock_movements(self._views, parse_sku(sku))

    def state(
        self,
        aggregate_id: UUID | str,
        *,
        version: int | None = None,
        at: datetime | None = None,
    ) -> AggregateState:
        """The aggregate as it was at ``version``, or at the time ``at`` (its
        last event at or before then), or now; rebuilt from the event store."""
        wanted = parse_id(aggregate_id, "aggregate_id")
        if version is not None and at is not None:
            raise InvalidInputError("version", version, "give a version or a time")
        if version is not None:
            version = parse_whole_number(version, "version", 1)
        moment = _parse_time(at, "at")
        for service in self._services.values():
            if moment is not None:
                events = list(service.events.get(wanted))
                if not events:
                    continue
                version = _version_at(events, moment)
                if version is None:
                    raise AggregateNotInLogError(wanted, f" as of {moment}")
            try:
                aggregate: Aggregate = service.repository.get(wanted, version=version)
            except AggregateNotFoundError:
                continue
            if version is not None and aggregate.version != version:
                raise AggregateNotInLogError(wanted, f" at version {version}")
            return AggregateState(
                service=service.name,
                aggregate_id=wanted,
                aggregate_type=type(aggregate).__qualname__,
                version=aggregate.version,
                as_of=aggregate.modified_on,
                state=public_state(aggregate),
            )
        raise AggregateNotInLogError(wanted)


def _version_at(events: Iterable[Any], moment: datetime) -> int | None:
    version = None
    for event in events:
        if event.timestamp > moment:
            break
        version = event.originator_version
    return version


def public_state(aggregate: Aggregate) -> dict[str, Any]:
    """An aggregate's public properties, as plain values."""
    return {
        name: _plain(getattr(aggregate, name))
        for name in sorted(dir(type(aggregate)))
        if not name.startswith("_")
        and isinstance(getattr(type(aggregate), name, None), property)
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (UUID, Decimal, datetime)):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if hasattr(value, "items"):
        return {str(key): _plain(item) for key, item in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {key: _plain(getattr(value, key)) for key in value.__dataclass_fields__}
    return value


def _names(values: object, field: str) -> Sequence[object]:
    # A lone string would be taken for a sequence of one-letter names.
    if not isinstance(values, (list, tuple)):
        raise InvalidInputError(field, values, "must be a list of names")
    return values


def _parse_flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(field, value, "must be True or False")
    return value


def _parse_service(name: object) -> str:
    for service in SERVICE_NAMES:
        if isinstance(name, str) and name.lower() == service.lower():
            return service
    raise InvalidInputError(
        "service", name, f"must be one of {', '.join(SERVICE_NAMES)}"
    )


def _parse_event_type(name: object) -> str:
    known = set(event_types())
    if isinstance(name, str) and name in known:
        return name
    raise InvalidInputError(
        "event_type", name, "unknown event type (e.g. 'Order.Placed')"
    )


def _parse_time(value: object, field: str) -> datetime | None:
    return None if value is None else parse_moment(value, field)
