"""Workload: a service's log to a read model through the broker (relay ->
NATS JetStream -> a broker-fed read model), against the same read model
reading the log's table directly, in the same run.

The store: ``relay_checkouts`` checkouts written by ``clients`` processes as
the read-model workload writes them, with nothing reacting (the Carts log is
then whole: nothing downstream writes to it). The ``carts`` read model follows
that log; every stage starts it from nothing in a views database of its own,
with its runner in this process, made as a shop makes it
(``hosting.subscriber_runner``): only the settings' feed differs.

1. direct: the read model catching up on the log's table, beside the read
   limit of the log (``common.read_limit``); the baseline of the others;
2. relay: ``EventRelay.relay_once`` publishing the whole log into its stream
   on a private NATS server, every message acknowledged by the broker and
   the relay's position recorded;
3. broker-fed: the read model catching up from that stream through its
   durable consumer;
4. end to end: on a second, empty server, the relay's worker and the
   broker-fed read model started together, until the read model has caught up.

Every figure is the log's notifications per second. The stream must hold the
whole log and the broker-fed views must equal the direct one (each table's
checksum), or the workload fails. Without ``nats-server`` on PATH the
workload is skipped, and says so.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from application.config import VIEWS, Settings
from application.relay.broker_feed import BrokerLog
from application.relay.jetstream import JetStream
from application.relay.messages import stream_subjects
from application.relay.relay import EventRelay
from application.shop import Shop
from application.subscribers.background import BackgroundWorker
from application.subscribers.hosting import (
    event_relay,
    raise_first_failure,
    stop_all,
    subscriber_runner,
)
from bench.nats_server import nats_server_binary, nats_server_version, running_nats
from bench.results import FEED_STAGE, Result, WorkloadError, rate
from bench.shopping import span
from bench.workloads.common import (
    READ_MODEL_LOGS,
    Bench,
    LogRead,
    read_limit,
    services,
    wait_settled,
)
from bench.workloads.read_models import write_checkouts_by_clients
from projections.read_model_subscriber import ReadModelSubscriber
from projections.read_models.catalog import read_model_named
from projections.store.comparison import checksums

WORKLOAD = "relay and broker feed"
# Its log (Carts) is whole without the saga, so the store needs no workers.
READ_MODEL = "carts"
LOG = READ_MODEL_LOGS[READ_MODEL]

DIRECT, RELAY, BROKER_FED, END_TO_END = "direct", "relay", "broker-fed", "end to end"


@dataclass(frozen=True)
class CaughtUp:
    """One catch-up of the read model from nothing."""

    seconds: float
    tables: dict[str, tuple[int, int]]
    """(rows, checksum) of each of its tables once caught up."""
    feed: dict[str, int] = field(default_factory=dict)
    """The broker feed's restarts and redeliveries, if the broker fed it."""


@contextmanager
def shop_with_own_views(
    bench: Bench, url: str, nats_url: str | None
) -> Iterator[tuple[Shop, Settings]]:
    """A shop on the store at ``url`` whose views are in an empty database of
    their own (each stage starts the read model from nothing), its read model
    fed by the broker at ``nats_url`` if one is given. It hosts nothing
    itself: the stage runs what it times."""
    with bench.store() as views_url:
        settings = Settings.from_url(
            url,
            part_urls={VIEWS: views_url},
            nats_url=nats_url,
            broker_fed=[READ_MODEL] if nats_url else [],
        )
        with Shop(settings=settings, subscribers="workers") as shop:
            yield shop, settings


def catch_up(
    bench: Bench, url: str, nats_url: str | None = None, *, relaying: bool = False
) -> CaughtUp:
    """Times the read model catching up from nothing: on the log's table
    (without ``nats_url``), or from the stream on the broker at ``nats_url``,
    with the log's relay running beside it if ``relaying``."""
    projection = read_model_named(READ_MODEL)
    with shop_with_own_views(bench, url, nats_url) as (shop, settings):
        service = services(shop)[LOG]
        runner = subscriber_runner(
            settings, ReadModelSubscriber(projection, shop.views), service
        )
        relay = event_relay(settings, service) if relaying else None
        workers: list[BackgroundWorker] = [runner] if relay is None else [relay, runner]
        try:
            if relay is not None:
                # The stream exists before the clock starts, as it does
                # wherever a relay has ever run: otherwise the runner's first
                # look finds none and it idles a poll interval, which would be
                # timed as the feed's.
                relay.broker.ensure_stream(
                    relay.stream, [stream_subjects(service.name)]
                )
            started = time.monotonic()
            for worker in workers:
                worker.start()
            settled = wait_settled(
                shop,
                bench.sizes.timeout,
                only=[READ_MODEL],
                check=lambda: raise_first_failure(workers),
            )
        finally:
            stop_all(workers)
            if relay is not None:
                relay.broker.close()
        generation = shop.views.registry.active(projection).generation
        with shop.views.engine.connect() as connection:
            tables = checksums(projection, generation, connection)
    feed = runner.log
    return CaughtUp(
        settled - started,
        tables,
        {"restarts": feed.restarts, "redeliveries": feed.redeliveries}
        if isinstance(feed, BrokerLog)
        else {},
    )


def relay_whole_log(url: str, nats_url: str, notifications: int) -> float:
    """Times ``relay_once`` publishing the log into an empty stream; returns
    its seconds, once the stream is checked to hold every notification."""
    with Shop(database_url=url, subscribers="workers") as shop:
        service = services(shop)[LOG]
        # Not ``hosting.event_relay``: relay_once runs in the caller's thread,
        # which holds no leadership, so the relay must need none.
        relay = EventRelay(service, JetStream(nats_url))
        try:
            started = time.perf_counter()
            # Connecting and making the stream are timed too: once per run of
            # ``eventshop relay --once``, a few milliseconds.
            reached = relay.relay_once()
            seconds = time.perf_counter() - started
            state = relay.broker.stream_state(relay.stream)
        finally:
            relay.broker.close()
        head = service.recorder.max_notification_id() or 0
    stored = 0 if state is None else state.messages
    if reached != head or stored != notifications:
        raise WorkloadError(
            f"the relay reached {reached} of {head}; the stream holds {stored} "
            f"messages for {notifications} notifications"
        )
    return seconds


def add_results(
    bench: Bench,
    *,
    limit: LogRead,
    direct: CaughtUp,
    relay_seconds: float,
    fed: CaughtUp,
    both: CaughtUp,
) -> None:
    notifications = limit.notifications
    direct_rate = rate(notifications, direct.seconds)

    def add(
        stage: str,
        subject: str,
        seconds: float,
        note: str,
        *,
        baseline: tuple[float, str] = (direct_rate, "direct catch-up"),
        details: Mapping[str, Any] | None = None,
    ) -> None:
        bench.add(
            Result(
                WORKLOAD,
                bench.engine,
                subject,
                rate(notifications, seconds),
                "events/s",
                baseline=baseline[0],
                baseline_label=baseline[1],
                note=note,
                details={
                    "log": LOG,
                    "notifications": notifications,
                    FEED_STAGE: stage,
                    "seconds": seconds,
                    **(details or {}),
                },
            )
        )

    add(
        DIRECT,
        f"{READ_MODEL} catch-up, direct",
        direct.seconds,
        "its runner alone, from the table",
        baseline=(limit.rate, "read limit"),
        details={"read_limit_seconds": limit.seconds},
    )
    add(
        RELAY,
        f"relay_once {LOG} -> JetStream",
        relay_seconds,
        "published, acknowledged, position recorded",
    )
    add(
        BROKER_FED,
        f"{READ_MODEL} catch-up, broker-fed",
        fed.seconds,
        "from the whole stream, durable consumer",
        details=fed.feed,
    )
    add(
        END_TO_END,
        f"{LOG} -> relay -> JetStream -> {READ_MODEL}",
        both.seconds,
        "relay and broker-fed runner at once, one process",
        details=both.feed,
    )


def run(bench: Bench) -> None:
    binary = nats_server_binary()
    if binary is None:
        reason = "nats-server is not on PATH"
        bench.say(f"[yellow]relay: skipped, {reason}[/] (apt-get install nats-server)")
        bench.fact(WORKLOAD, skipped=reason)
        return
    checkouts = bench.sizes.relay_checkouts
    with bench.store() as url:
        # No delivery details: each stage reads the log into a views database
        # of its own, which holds none of the customers' keys, so the sealed
        # details would be undecodable there (every checkout parked).
        written = write_checkouts_by_clients(bench, url, checkouts, with_delivery=False)
        with Shop(database_url=url, subscribers="workers") as shop:
            limit = read_limit(services(shop)[LOG])
            heads = shop.log_heads()
        bench.say(f"relay: {limit.notifications:,} events in {LOG}; direct catch-up")
        direct = catch_up(bench, url)
        with running_nats(binary, scratch=bench.scratch) as nats:
            bench.say("relay: relay_once into JetStream")
            relay_seconds = relay_whole_log(url, nats.url, limit.notifications)
            bench.say(f"relay: {READ_MODEL} fed by the broker")
            fed = catch_up(bench, url, nats.url)
        # A second server, so that the stream starts empty again. The relay's
        # recorded position is the log's head already: each page's record is
        # refused as no step forward and the position read back, a statement
        # more per page of 500 than a first run's.
        with running_nats(binary, scratch=bench.scratch) as nats:
            bench.say("relay: the relay and the broker-fed read model at once")
            both = catch_up(bench, url, nats.url, relaying=True)
    for name, caught_up in ((BROKER_FED, fed), (END_TO_END, both)):
        if caught_up.tables != direct.tables:
            raise WorkloadError(
                f"the {name} {READ_MODEL} view differs from the direct one: "
                f"{caught_up.tables} != {direct.tables}"
            )
    bench.fact(
        WORKLOAD,
        checkouts=sum(len(report.order_ids) for report in written),
        log_heads=heads,
        events=limit.notifications,
        writing_checkouts_per_second=rate(checkouts, span(written)),
        nats_server=nats_server_version(binary),
        seconds={
            DIRECT: direct.seconds,
            RELAY: relay_seconds,
            BROKER_FED: fed.seconds,
            END_TO_END: both.seconds,
        },
        view_rows={name: rows for name, (rows, _) in direct.tables.items()},
    )
    add_results(
        bench,
        limit=limit,
        direct=direct,
        relay_seconds=relay_seconds,
        fed=fed,
        both=both,
    )
