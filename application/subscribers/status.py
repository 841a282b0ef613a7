"""What ``eventshop status`` and ``eventshop topology`` show: where each subscriber
is in the log it follows, and which event types reach which subscribers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from eventsourcing.application import Application

from application.subscribers.decoding import (
    UndecodableEventError,
    decoded,
    undecodable,
)
from application.subscribers.leadership import HEARTBEAT_SECONDS
from application.subscribers.subscriber import Subscriber
from application.topology import TOPOLOGY
from projections.store import SubscriberReport

# A subscriber whose last heartbeat is older than this is taken to be gone.
STALE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS

# States of an instance that holds its subscriber's position ("retrying": a
# handler failed and it is backing off before the next attempt; "waiting": the
# database is away, and it resumes from the stored position once it is back).
ACTIVE_STATES = frozenset({"running", "retrying", "waiting"})

# States in which a subscriber handles nothing until someone acts: it crashed,
# or it gave up on an event under the "stop" fault policy.
STOPPED_BY_FAULT_STATES = frozenset({"failed", "halted"})


class Declared(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def follows(self) -> str: ...
    @property
    def topics(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class SubscriberStatus:
    name: str
    follows: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float | None
    state: str
    running: bool
    host: str | None
    pid: int | None
    standbys: int
    error: str | None
    next_event_error: str | None = None
    """Why the next event after its position cannot be decoded, if it cannot."""

    @property
    def error_summary(self) -> str | None:
        """One line: where it halted and why, or the error it last hit."""
        if not self.error:
            return None
        lines = self.error.strip().splitlines()
        # A halt's report starts with its summary; a traceback ends with it.
        return lines[0] if self.state == "halted" else lines[-1]


def subscriber_statuses(
    subscribers: Sequence[Subscriber],
    services: Mapping[str, Application[Any]],
    reports: Mapping[str, Sequence[SubscriberReport]],
    now: datetime | None = None,
) -> list[SubscriberStatus]:
    """One row per subscriber: its position against the head of its log, how old
    the oldest event it has not handled yet is, and what its active instance (or
    else its most recent one) last said."""
    now = now or datetime.now(UTC)
    statuses = []
    for subscriber in subscribers:
        service = services[subscriber.follows]
        position = subscriber.position() or 0
        head = service.recorder.max_notification_id() or 0
        instances = reports.get(subscriber.name, ())
        alive = [
            report
            for report in instances
            if (now - report.heartbeat_at).total_seconds() < STALE_AFTER_SECONDS
        ]
        active = [report for report in alive if report.state in ACTIVE_STATES]
        shown = active or list(instances)
        report = shown[0] if shown else None
        next_event = _next_event(service, subscriber, position)
        statuses.append(
            SubscriberStatus(
                name=subscriber.name,
                follows=subscriber.follows,
                position=position,
                head=head,
                lag_events=max(head - position, 0),
                lag_seconds=_age(next_event, now),
                state=report.state if report else "never started",
                running=bool(active),
                host=report.host if report else None,
                pid=report.pid if report else None,
                standbys=sum(1 for other in alive if other.state == "standby"),
                error=report.error if report else None,
                next_event_error=(
                    str(next_event)
                    if isinstance(next_event, UndecodableEventError)
                    else None
                ),
            )
        )
    return statuses


@dataclass(frozen=True)
class WaitingPart:
    """A long-running part other than a subscriber (the payment-deadline
    ticker, a chain keeper) that says it is waiting for the database."""

    name: str
    host: str
    pid: int
    reason: str


def waiting_parts(
    reports: Mapping[str, Sequence[SubscriberReport]],
    subscribers: Collection[str],
    now: datetime | None = None,
) -> list[WaitingPart]:
    """The instances of parts not in ``subscribers`` whose last report, still
    fresh, is ``waiting``."""
    now = now or datetime.now(UTC)
    return [
        WaitingPart(name, report.host, report.pid, report.error or "waiting")
        for name, instances in sorted(reports.items())
        if name not in subscribers
        for report in instances
        if report.state == "waiting"
        and (now - report.heartbeat_at).total_seconds() < STALE_AFTER_SECONDS
    ]


def _next_event(
    service: Application[Any], subscriber: Subscriber, position: int
) -> object | UndecodableEventError | None:
    """The first event after ``position`` (None at the head), or why it cannot
    be decoded (as its subscriber will find: see ``application.subscribers.runner``)."""
    pending = service.recorder.select_notifications(
        start=position, limit=1, inclusive_of_start=False
    )
    if not pending:
        return None
    (notification,) = pending
    problem = undecodable(subscriber.follows, notification, None)
    if problem is not None:
        return problem
    try:
        return decoded(subscriber.follows, notification, service.mapper.to_domain_event)
    except UndecodableEventError as problem:
        # One it does not handle need not decode (nor does it stop it); only
        # its age is unknown.
        return problem if notification.topic in subscriber.topics else None


def _age(next_event: object | None, now: datetime) -> float | None:
    """How old the oldest event not handled yet is (None: none, or unknown)."""
    if next_event is None or isinstance(next_event, UndecodableEventError):
        return None
    timestamp: datetime = getattr(next_event, "timestamp", now)
    return max((now - timestamp).total_seconds(), 0.0)


def event_type_name(topic: str) -> str:
    """``domain.cart:Cart.CheckedOut`` -> ``Cart.CheckedOut``."""
    return topic.partition(":")[2] or topic


def topology(subscribers: Sequence[Declared] | None = None) -> dict[str, list[str]]:
    """The map "event type -> subscribers", event types sorted by name, of
    ``subscribers`` (default: the shop's, as ``application.topology`` declares
    them)."""
    if subscribers is None:
        subscribers = TOPOLOGY.declared()
    readers: dict[str, list[str]] = defaultdict(list)
    for subscriber in subscribers:
        for topic in subscriber.topics:
            readers[event_type_name(topic)].append(subscriber.name)
    return {event_type: readers[event_type] for event_type in sorted(readers)}


def topology_mermaid(
    subscribers: Sequence[Declared] | None = None,
    *,
    feeds: Mapping[str, str] | None = None,
) -> str:
    """A Mermaid flowchart: service -> event type -> subscriber, of
    ``subscribers`` (default: the shop's, as the topology declares them);
    ``feeds`` says, by subscriber name, which read the broker (a dotted
    arrow labelled JetStream) rather than the log."""
    if subscribers is None:
        subscribers = TOPOLOGY.declared()
    lines = ["flowchart LR"]
    services = sorted({subscriber.follows for subscriber in subscribers})
    for service in services:
        lines.append(f"    svc_{service}[({service} log)]")
    for event_type, names in topology(subscribers).items():
        node = "ev_" + event_type.replace(".", "_")
        lines.append(f"    {node}[{event_type}]")
        for subscriber in subscribers:
            if subscriber.name in names:
                lines.append(f"    svc_{subscriber.follows} --> {node}")
                break
        for name in names:
            arrow = "-.->|JetStream|" if (feeds or {}).get(name) == "broker" else "-->"
            lines.append(f"    {node} {arrow} sub_{name}{{{{{name}}}}}")
    return "\n".join(lines)
