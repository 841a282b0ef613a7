"""How a shop runs, and where each of its parts keeps its data.

``EVENTSHOP_DATABASE_URL`` (or the ``database_url`` argument) picks the engine:

* unset, or ``sqlite:///path/to/folder``: the embedded default, one SQLite file per
  service under a data folder (``./eventshop-data`` unless told otherwise);
* ``postgresql://user:password@host:port/dbname?schema=name``: one PostgreSQL
  database, each service with its own tables in ``schema`` (default ``public``).

A service, or the views, may be given a database of its own
(``EVENTSHOP_CARTS_DATABASE_URL``, ``EVENTSHOP_ORDERS_DATABASE_URL``,
``EVENTSHOP_INVENTORY_DATABASE_URL``, ``EVENTSHOP_VIEWS_DATABASE_URL``, or
``part_urls``); each defaults to the one above, and the engines may be mixed.
Everything else (the services, the subscribers, the CLI) asks this module for
an eventsourcing environment or a :class:`~application.databases.Storage` and
never looks at a URL itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from application.databases import (
    DEFAULT_DATA_DIR,
    ConfigurationError,
    Engine,
    PostgresLocation,
    Storage,
)
from application.service_names import SERVICE_NAMES

if TYPE_CHECKING:
    # Loaded when settings are read, not when the CLI parses arguments.
    from application.persistence.encryption import CipherKeys

DATABASE_URL_VARIABLE = "EVENTSHOP_DATABASE_URL"
NATS_URL_VARIABLE = "EVENTSHOP_NATS_URL"
NATS_URL_SCHEMES = ("nats://", "tls://")
"""How the URL of a NATS server starts."""
BROKER_FED_VARIABLE = "EVENTSHOP_BROKER_FED"
ALL_SUBSCRIBERS = "all"
"""``EVENTSHOP_BROKER_FED=all``: every subscriber is fed by the broker."""
Feed = Literal["direct", "broker"]
"""How a subscriber reads the log it follows: the service's log itself, or the
service's stream on the broker (``application.relay.broker_feed``)."""
VIEWS = "views"
"""The part of a shop that holds the read models (beside its three services)."""
STORAGE_PARTS = (*SERVICE_NAMES, VIEWS)
"""What may be given a database of its own."""
PAYMENT_TIMEOUT_VARIABLE = "EVENTSHOP_PAYMENT_TIMEOUT_SECONDS"
COMMAND_TIMEOUT_VARIABLE = "EVENTSHOP_COMMAND_TIMEOUT_SECONDS"
IDEMPOTENCY_TTL_VARIABLE = "EVENTSHOP_IDEMPOTENCY_TTL_SECONDS"
CONNECT_TIMEOUT_VARIABLE = "EVENTSHOP_CONNECT_TIMEOUT_SECONDS"
POOL_MAX_IDLE_VARIABLE = "EVENTSHOP_POOL_MAX_IDLE_SECONDS"
SHARED_POOL_MAX_OVERFLOW_VARIABLE = "EVENTSHOP_SHARED_POOL_MAX_OVERFLOW"
DEFAULT_COMMAND_TIMEOUT_SECONDS = 10.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 5.0
# How long a pooled connection above what the pool keeps at least may stay
# idle (psycopg_pool closes one such connection per period; its default is
# 10 minutes, so a burst held its connections long after).
DEFAULT_POOL_MAX_IDLE_SECONDS = 10.0
# The services' shared pool (one per process and database) may grow to this
# many connections above its least size, as the three pools' 24 never did.
DEFAULT_SHARED_POOL_MAX_OVERFLOW = 15

OnFailure = Literal["stop", "park"]


@dataclass(frozen=True)
class FaultPolicy:
    """What a subscriber does when a handler raises: retry the batch with
    exponential backoff, up to ``attempts`` times in all, then (if it held more
    than one event) try its events one at a time to find the one that fails,
    and when that one has failed ``attempts`` times on its own, either ``stop``
    (halt before it, so nothing after it is handled until the subscriber is
    restarted) or ``park`` it as a dead letter and carry on.

    Database outages and lock conflicts are not the event's fault: they are
    retried without limit (at ``max_delay`` intervals) and never count."""

    attempts: int = 5
    base_delay: float = 0.1
    max_delay: float = 5.0
    on_failure: OnFailure = "stop"

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError("a fault policy needs at least one attempt")
        if not 0 <= self.base_delay <= self.max_delay:
            raise ConfigurationError("fault policy delays: 0 <= base <= max")
        if self.on_failure not in ("stop", "park"):
            raise ConfigurationError(f"unknown fault policy {self.on_failure!r}")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row."""
        return min(self.base_delay * 2.0 ** (failures - 1), self.max_delay)


@dataclass(frozen=True)
class Batching:
    """How runners take a log in batches.

    A runner that is behind takes up to ``max_events`` events per batch (one
    transaction). While the log is busy, a runner paces itself: after a batch
    that took ``d`` seconds, the next one starts no sooner than ``d /
    busy_share`` seconds after it started, and never sooner than
    ``interval_seconds`` nor later than ``max_interval_seconds`` (unless the
    batch was full: it is catching up). The events written meanwhile wait for
    the next batch, so a write wakes each subscriber at most that often, its
    per-batch cost is shared by every event of the interval, and when batches
    get slow (a busy machine or database) they get fewer and larger. An event
    written to a quiet log is taken at once."""

    max_events: int = 2000
    interval_seconds: float = 0.02
    max_interval_seconds: float = 0.25
    busy_share: float = 0.25

    def __post_init__(self) -> None:
        if self.max_events < 1:
            raise ConfigurationError("a batch holds at least one event")
        if not 0 <= self.interval_seconds <= self.max_interval_seconds <= 10:
            raise ConfigurationError("batch intervals: 0 <= least <= most <= 10 s")
        if not 0 < self.busy_share <= 1:
            raise ConfigurationError("busy share: more than 0, at most 1")

    def interval_after(self, seconds: float) -> float:
        """The least time between the starts of two batches of a busy log,
        after a batch that took ``seconds``."""
        wanted = seconds / self.busy_share
        return min(max(wanted, self.interval_seconds), self.max_interval_seconds)


# A process manager's reactions are commands with consequences and depend on
# order (a cancellation handled before its placement would release nothing), so
# it stops. A read model can always be rebuilt from the log, so it parks the
# event and keeps serving everything else.
PROCESS_MANAGER_FAULT_POLICY = FaultPolicy(on_failure="stop")
READ_MODEL_FAULT_POLICY = FaultPolicy(on_failure="park")


@dataclass(frozen=True)
class Settings:
    """How one shop runs: where its parts keep their data, its pools, timing,
    batching and fault policies."""

    # The shop's database: every part's that ``own_storage`` does not name.
    engine: Engine
    data_dir: Path = DEFAULT_DATA_DIR
    postgres: PostgresLocation | None = None
    # A database of its own, per part (a service's name, or ``"views"``).
    own_storage: Mapping[str, Storage] = field(default_factory=dict)
    # Small pools: PostgreSQL allows 100 connections by default across every
    # process on the machine. The three services of a process share one pool
    # per database (at least ``pool_size`` connections, at most
    # ``shared_pool_max_overflow`` more); the view store has one of its own
    # (``pool_size``, and ``pool_max_overflow`` more for a while).
    pool_size: int = 1
    pool_max_overflow: int = 7
    shared_pool_max_overflow: int = DEFAULT_SHARED_POOL_MAX_OVERFLOW
    # Pooled connections above what a pool keeps at least are closed once
    # they have been idle this long (one per period).
    pool_max_idle_seconds: float = DEFAULT_POOL_MAX_IDLE_SECONDS
    lock_timeout_seconds: int = 30
    # How long a confirmed order may stay unpaid before it is cancelled.
    payment_timeout: timedelta = timedelta(minutes=30)
    # How long a command's idempotency key answers its repeats; after that
    # the key may be given to a new command.
    idempotency_ttl: timedelta = timedelta(hours=24)
    # How often the payment-deadline ticker looks for deadlines that passed.
    deadline_tick_seconds: float = 1.0
    # A command either returns or raises within this many seconds, also while
    # the database is unreachable (it keeps retrying until then).
    command_timeout_seconds: float = DEFAULT_COMMAND_TIMEOUT_SECONDS
    # How long one attempt to connect may take (and starting a shop at all).
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    extra_env: dict[str, str] = field(default_factory=dict, repr=False)
    # Encryption at rest (``application.persistence.encryption``): None is off.
    cipher_keys: CipherKeys | None = field(default=None, repr=False)
    # The NATS server the relays publish to and broker-fed subscribers read.
    nats_url: str | None = None
    # The subscribers fed by the broker (names, or ``ALL_SUBSCRIBERS``); the
    # others read the log they follow directly.
    broker_fed: frozenset[str] = frozenset()
    batching: Batching = Batching()
    process_manager_fault_policy: FaultPolicy = PROCESS_MANAGER_FAULT_POLICY
    read_model_fault_policy: FaultPolicy = READ_MODEL_FAULT_POLICY
    # Per subscriber name, overriding the two above.
    fault_policies: Mapping[str, FaultPolicy] = field(
        # A read model, but the deadline ticker acts on it: a parked event there
        # would be a deadline that silently never fires.
        default_factory=lambda: {"payment_deadlines": PROCESS_MANAGER_FAULT_POLICY}
    )

    @classmethod
    def from_url(
        cls,
        database_url: str | None = None,
        *,
        data_dir: str | Path | None = None,
        part_urls: Mapping[str, str | None] | None = None,
        nats_url: str | None = None,
        broker_fed: Collection[str] | None = None,
        cipher_keys: CipherKeys | None = None,
    ) -> Settings:
        """Reads the URL (or the environment) and returns validated settings.
        A ``data_dir`` without a URL means SQLite in that folder, whatever the
        environment says. ``part_urls`` gives a part (a service's name, or
        ``"views"``) a database of its own; a part it leaves out, or gives
        None, is read from ``EVENTSHOP_<PART>_DATABASE_URL`` if set.
        ``broker_fed`` names the subscribers fed by the broker at ``nats_url``
        (default: ``EVENTSHOP_BROKER_FED``, comma-separated, and
        ``EVENTSHOP_NATS_URL``). ``cipher_keys`` switch encryption at rest
        on (default: ``EVENTSHOP_CIPHER_KEY`` and ``EVENTSHOP_CIPHER_OLD_KEYS``,
        or ``EVENTSHOP_CIPHER_KEY_FILE``)."""
        from application.persistence.encryption import CipherKeys

        settings = cls._storage(database_url, data_dir)
        settings = replace(
            settings,
            own_storage=_own_storage(settings, part_urls),
            nats_url=nats_url or os.environ.get(NATS_URL_VARIABLE) or None,
            broker_fed=_broker_fed(broker_fed),
            cipher_keys=cipher_keys or CipherKeys.from_environment(),
        )
        payment_timeout = _seconds_from_environment(PAYMENT_TIMEOUT_VARIABLE)
        if payment_timeout is not None:
            settings = replace(
                settings, payment_timeout=timedelta(seconds=payment_timeout)
            )
        idempotency_ttl = _seconds_from_environment(IDEMPOTENCY_TTL_VARIABLE)
        if idempotency_ttl is not None:
            settings = replace(
                settings, idempotency_ttl=timedelta(seconds=idempotency_ttl)
            )
        command_timeout = _seconds_from_environment(COMMAND_TIMEOUT_VARIABLE)
        if command_timeout is not None:
            settings = replace(settings, command_timeout_seconds=command_timeout)
        connect_timeout = _seconds_from_environment(CONNECT_TIMEOUT_VARIABLE)
        if connect_timeout is not None:
            settings = replace(settings, connect_timeout_seconds=connect_timeout)
        return settings

    def __post_init__(self) -> None:
        for name in (
            "command_timeout_seconds",
            "connect_timeout_seconds",
            "pool_max_idle_seconds",
        ):
            seconds = getattr(self, name)
            if not 0 < seconds < 10**6:
                raise ConfigurationError(f"{name} must be positive, not {seconds!r}")
        _check_parts(self.own_storage)
        if self.broker_fed and not self.nats_url:
            raise ConfigurationError(
                "subscribers fed by the broker need its URL "
                f"({NATS_URL_VARIABLE}, or --nats)"
            )
        if self.nats_url is not None and not self.nats_url.startswith(NATS_URL_SCHEMES):
            raise ConfigurationError(
                f"the broker's URL must start with nats:// or tls://, "
                f"not {self.nats_url[:40]!r}"
            )

    def feed_of(self, subscriber: str) -> Feed:
        """How ``subscriber`` reads the log it follows."""
        if ALL_SUBSCRIBERS in self.broker_fed or subscriber in self.broker_fed:
            return "broker"
        return "direct"

    @classmethod
    def _storage(
        cls, database_url: str | None, data_dir: str | Path | None
    ) -> Settings:
        if database_url is None and data_dir is not None:
            return cls(engine="sqlite", data_dir=Path(data_dir))
        url = database_url or os.environ.get(DATABASE_URL_VARIABLE) or ""
        if data_dir is not None and not url.startswith("sqlite:"):
            raise ConfigurationError("a data folder only applies to SQLite")
        storage = Storage.from_url(url, data_dir)
        return cls(
            engine=storage.engine, data_dir=storage.data_dir, postgres=storage.postgres
        )

    @property
    def storage(self) -> Storage:
        """The shop's database: every part's that has none of its own."""
        return Storage(self.engine, self.data_dir, self.postgres)

    def storage_of(self, part: str) -> Storage:
        """The database of ``part`` (a service's name, or ``"views"``)."""
        return self.own_storage.get(part) or self.storage

    def service_env(self, service_name: str) -> dict[str, str]:
        """The eventsourcing environment of one service (an application)."""
        storage = self.storage_of(service_name)
        env: dict[str, str] = {
            "PERSISTENCE_MODULE": _PERSISTENCE_MODULES[storage.engine],
        }
        if storage.engine == "sqlite":
            env["SQLITE_DBNAME"] = str(storage.sqlite_file(service_name))
            env["SQLITE_LOCK_TIMEOUT"] = str(self.lock_timeout_seconds)
        else:
            pg = storage.postgres
            assert pg is not None
            env.update(
                POSTGRES_HOST=pg.host,
                POSTGRES_PORT=str(pg.port),
                POSTGRES_USER=pg.user,
                POSTGRES_PASSWORD=pg.password,
                POSTGRES_DBNAME=pg.dbname,
                POSTGRES_SCHEMA=pg.schema,
                POSTGRES_POOL_SIZE=str(self.pool_size),
                POSTGRES_MAX_OVERFLOW=str(self.pool_max_overflow),
                POSTGRES_LOCK_TIMEOUT=str(self.lock_timeout_seconds),
                POSTGRES_PRE_PING="y",
                # The library's name for how long to wait for a pooled connection.
                POSTGRES_CONNECT_TIMEOUT=str(math.ceil(self.connect_timeout_seconds)),
                **{
                    CONNECT_TIMEOUT_VARIABLE: str(self.connect_timeout_seconds),
                    COMMAND_TIMEOUT_VARIABLE: str(self.command_timeout_seconds),
                    POOL_MAX_IDLE_VARIABLE: str(self.pool_max_idle_seconds),
                    SHARED_POOL_MAX_OVERFLOW_VARIABLE: str(
                        self.shared_pool_max_overflow
                    ),
                },
            )
        env.update(self._mapper_env([service_name]))
        env.update(self.extra_env)
        return env

    def decoding_env(self) -> dict[str, str]:
        """The eventsourcing environment of a service held in memory, to decode
        the events a service stored as the service does (the same mapper
        settings) without opening its database."""
        return {
            **self._mapper_env(SERVICE_NAMES),
            **self.extra_env,
            "PERSISTENCE_MODULE": "eventsourcing.popo",
        }

    def _mapper_env(self, service_names: Collection[str]) -> dict[str, str]:
        from application.persistence.encryption import mapper_environment

        return mapper_environment(self.cipher_keys, service_names)

    def database_url(self) -> str:
        """The URL that gives another process the shop's database."""
        return self.storage.url()

    def child_environment(self) -> dict[str, str]:
        """Environment variables that give a child process (an ``eventshop
        worker``) these settings. Pass them by environment, never on its
        command line: anyone on the machine can read a command line (``ps``),
        and the URL holds the password."""
        return {
            DATABASE_URL_VARIABLE: self.database_url(),
            **{
                part_url_variable(part): storage.url()
                for part, storage in self.own_storage.items()
            },
            **({NATS_URL_VARIABLE: self.nats_url} if self.nats_url else {}),
            **(
                {BROKER_FED_VARIABLE: ",".join(sorted(self.broker_fed))}
                if self.broker_fed
                else {}
            ),
            PAYMENT_TIMEOUT_VARIABLE: str(self.payment_timeout.total_seconds()),
            IDEMPOTENCY_TTL_VARIABLE: str(self.idempotency_ttl.total_seconds()),
            COMMAND_TIMEOUT_VARIABLE: str(self.command_timeout_seconds),
            CONNECT_TIMEOUT_VARIABLE: str(self.connect_timeout_seconds),
            **self._cipher_child_environment(),
        }

    def _cipher_child_environment(self) -> dict[str, str]:
        from application.persistence.encryption import (
            CIPHER_VARIABLES,
        )

        # Every variable set (empty when off), so the child's own environment
        # cannot switch encryption on, off, or to another key.
        off = dict.fromkeys(CIPHER_VARIABLES, "")
        if self.cipher_keys is None:
            return off
        return {**off, **self.cipher_keys.environment()}

    def fault_policy(self, subscriber: str, *, process_manager: bool) -> FaultPolicy:
        """How the subscriber named ``subscriber`` handles a handler that raises."""
        default = (
            self.process_manager_fault_policy
            if process_manager
            else self.read_model_fault_policy
        )
        return self.fault_policies.get(subscriber, default)

    def describe(self) -> str:
        """Where the data is, without the password."""
        apart = [
            f"{part}: {storage.describe()}"
            for part, storage in self.own_storage.items()
        ]
        return "; ".join([self.storage.describe(), *apart])


def part_url_variable(part: str) -> str:
    """The environment variable that gives ``part`` a database of its own."""
    return f"EVENTSHOP_{part.upper()}_DATABASE_URL"


def _broker_fed(names: Collection[str] | None) -> frozenset[str]:
    if names is None:
        raw = os.environ.get(BROKER_FED_VARIABLE, "")
        names = [name.strip() for name in raw.split(",")]
    return frozenset(name for name in names if name)


def _check_parts(parts: Collection[str]) -> None:
    unknown = set(parts) - set(STORAGE_PARTS)
    if unknown:
        raise ConfigurationError(
            f"no part named {sorted(unknown)} to keep in a database of its own "
            f"(known: {', '.join(STORAGE_PARTS)})"
        )


def _own_storage(
    settings: Settings, part_urls: Mapping[str, str | None] | None
) -> dict[str, Storage]:
    """The parts given a database other than the shop's, and which."""
    given = dict(part_urls or {})
    _check_parts(given)
    own: dict[str, Storage] = {}
    for part in STORAGE_PARTS:
        url = given.get(part) or os.environ.get(part_url_variable(part))
        if url:
            storage = Storage.from_url(url)
            if storage != settings.storage:
                own[part] = storage
    return own


_PERSISTENCE_MODULES: dict[Engine, str] = {
    "sqlite": "application.persistence.sqlite:SQLiteFactory",
    "postgres": "application.persistence.postgres:PostgresFactory",
}


def _seconds_from_environment(variable: str) -> float | None:
    """A positive number of seconds from the environment (so worker processes
    can share a shop's timing without code)."""
    raw = os.environ.get(variable)
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigurationError(
            f"{variable}={raw!r} is not a number of seconds"
        ) from None
    if not 0 < seconds < 10**9:
        raise ConfigurationError(f"{variable} must be positive")
    return seconds
