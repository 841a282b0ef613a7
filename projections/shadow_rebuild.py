"""Rebuilding a read model from the history of the log it follows.

A rebuild fills a new generation of a projection's tables (the *shadow*) from
position 0, through the same ``Positions.apply`` as live batches, while the
active generation keeps serving readers and its runner keeps moving. It then
catches the shadow up with the live generation's position and, in one write
transaction that stops the live runner from moving meanwhile, compares the two
generations at that same position and, if the mode says so, switches readers
over to the shadow. The generation that is no longer active is dropped.

The shadow is filled in large batches whose commits need not wait for the
disk, and on PostgreSQL without its secondary indexes, built once it has
caught up (see ``Generations.reserve``).

The shadow is built by the code's ``projection`` class, so a changed projection
(a new column, a new rule, a higher ``version``) is rolled out by a rebuild in
``switch`` mode, without readers ever missing a table.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from eventsourcing.persistence import Notification
from sqlalchemy import Connection

from projections.read_model import ReadModel
from projections.store import ActiveGeneration, ViewStore, subscriber_name
from projections.store.comparison import (
    TableComparison,
    compare_generations,
    generations_agree,
)

__all__ = [
    "CATCH_UP_ROUNDS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_DIFFERENCES",
    "REBUILD_MODES",
    "EventSource",
    "Phase",
    "ProgressCallback",
    "RebuildError",
    "RebuildMode",
    "RebuildReport",
    "RebuildStep",
    "rebuild",
]

RebuildMode = Literal["verify", "switch-if-equal", "switch"]
REBUILD_MODES: tuple[RebuildMode, ...] = ("verify", "switch-if-equal", "switch")

Phase = Literal["replaying", "catching up", "indexing", "comparing", "done"]

# Notifications read and applied per transaction: large, since every batch
# costs a few statements per table whatever its size, yet bounded, since a
# batch's events and row changes are held in memory.
DEFAULT_BATCH_SIZE = 5_000
DEFAULT_MAX_DIFFERENCES = 20
# Rounds of catching up outside the final transaction; what is left after them
# is caught up inside it, while the live runner waits.
CATCH_UP_ROUNDS = 20


class EventSource(Protocol):
    """A service's notification log, as a rebuild reads it."""

    @property
    def name(self) -> str:
        """The service's name (what ``ReadModel.follows`` says)."""

    def head(self) -> int:
        """The newest position in the log, 0 when it is empty."""

    def read(
        self, after: int, limit: int, up_to: int | None = None
    ) -> Sequence[Notification]:
        """Up to ``limit`` notifications with ``after < id <= up_to``, in order."""

    def decode(self, notification: Notification) -> object:
        """The domain event a notification holds; raises ValueError, naming
        the log and the position, when it cannot be decoded."""

    def check_topic(self, notification: Notification) -> None:
        """Raises ValueError, naming the log and the position, when the
        notification's topic names no class: such an event cannot be known
        to be one the projection has no interest in."""


class RebuildError(RuntimeError):
    """A rebuild could not finish because something else changed the
    projection's generations meanwhile (another rebuild, most likely)."""


@dataclass(frozen=True)
class RebuildStep:
    """Where a rebuild is, for a progress display."""

    projection: str
    phase: Phase
    position: int
    target: int


ProgressCallback = Callable[[RebuildStep], None]


@dataclass(frozen=True)
class RebuildReport:
    projection: str
    mode: RebuildMode
    version: int
    """The version of the projection code that built the new generation."""
    live_generation: int
    live_version: int
    generation: int
    """The generation the rebuild built."""
    position: int
    """The log position both generations were compared at."""
    log_head: int
    """The newest log position when the rebuild started."""
    notifications_read: int
    events_applied: int
    """Notifications of the event types the projection handles."""
    undecodable: tuple[str, ...]
    """Why each event the rebuild passed over could not be decoded (the live
    projection parks the same events as dead letters)."""
    tables: tuple[TableComparison, ...]
    switched: bool
    dropped: tuple[int, ...]
    """Generations whose tables the rebuild dropped at the end."""
    seconds: float

    @property
    def versions_differ(self) -> bool:
        return self.version != self.live_version

    @property
    def agrees(self) -> bool:
        """Both generations hold the same rows (never, across versions)."""
        return generations_agree(self.live_version, self.version, self.tables)

    @property
    def active_generation(self) -> int:
        return self.generation if self.switched else self.live_generation


def rebuild(
    store: ViewStore,
    projection: type[ReadModel],
    source: EventSource,
    *,
    mode: RebuildMode = "switch-if-equal",
    progress: ProgressCallback | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_differences: int = DEFAULT_MAX_DIFFERENCES,
) -> RebuildReport:
    """Rebuilds ``projection`` from its log into a new generation, compares it
    with the active one at the same position and, by ``mode``:

    * ``verify``: never switches; drops the new generation;
    * ``switch-if-equal``: switches if both hold the same rows, else drops the
      new generation;
    * ``switch``: switches whatever the comparison says (to roll out a
      projection whose tables or rules changed).

    The new generation is built up to the position the live one has reached,
    never further, so that both are compared at one position: with the live
    runner stopped, that is where it stopped, and a runner carries on from
    there after a switch.

    After a switch the old generation is dropped: its runner's next batch is
    refused (``Positions.apply`` with ``only_if_active``) and it resyncs onto
    the new one, from the position the comparison was made at.
    """
    if mode not in REBUILD_MODES:
        raise ValueError(f"unknown rebuild mode {mode!r} (known: {REBUILD_MODES})")
    if source.name != projection.follows:
        raise ValueError(
            f"projection {projection.name} follows {projection.follows}, "
            f"not {source.name}"
        )
    started = time.monotonic()
    live = store.registry.active(projection)
    log_head = source.head()
    shadow = _Shadow(
        store,
        projection,
        source,
        store.generations.reserve(projection, defer_indexes=True),
        batch_size,
    )
    switched = False
    try:
        live_subscriber = subscriber_name(projection, live.generation)
        target = store.positions.position(live_subscriber, projection.follows) or 0
        shadow.replay_to(target, "replaying", progress)
        for _ in range(CATCH_UP_ROUNDS):
            target = store.positions.position(live_subscriber, projection.follows) or 0
            if target - shadow.position <= batch_size:
                break
            shadow.replay_to(target, "catching up", progress)
        if progress is not None:
            progress(RebuildStep(projection.name, "indexing", shadow.position, target))
        store.generations.create_indexes(projection, shadow.generation)
        with store.writer.begin() as connection:
            target = _freeze_live(store, projection, live, shadow, connection)
            shadow.replay_within(connection, target, progress)
            if progress is not None:
                progress(RebuildStep(projection.name, "comparing", target, target))
            tables = compare_generations(
                projection,
                live,
                shadow.generation,
                connection,
                max_differences=max_differences,
            )
            switching = mode == "switch" or (
                mode == "switch-if-equal"
                and generations_agree(live.version, projection.version, tables)
            )
            if switching:
                store.registry.switch(projection, shadow.generation, connection)
        switched = switching
        dropped = live.generation if switched else shadow.generation
        store.generations.drop(projection, dropped)
    except BaseException:
        if not switched:
            with contextlib.suppress(Exception):
                store.generations.drop(projection, shadow.generation)
        raise
    if progress is not None:
        progress(RebuildStep(projection.name, "done", target, target))
    return RebuildReport(
        projection=projection.name,
        mode=mode,
        version=projection.version,
        live_generation=live.generation,
        live_version=live.version,
        generation=shadow.generation,
        position=target,
        log_head=log_head,
        notifications_read=shadow.notifications_read,
        events_applied=shadow.events_applied,
        undecodable=tuple(shadow.undecodable),
        tables=tables,
        switched=switched,
        dropped=(dropped,),
        seconds=time.monotonic() - started,
    )


class _Shadow:
    """The generation being rebuilt, and how far it has got."""

    def __init__(
        self,
        store: ViewStore,
        projection: type[ReadModel],
        source: EventSource,
        generation: int,
        batch_size: int,
    ) -> None:
        self.store = store
        self.projection = projection
        self.source = source
        self.generation = generation
        self.batch_size = batch_size
        self.topics = projection.topics()
        # reserve_generation stored position 0 for it.
        self.position = 0
        self.notifications_read = 0
        self.events_applied = 0
        self.undecodable: list[str] = []

    def replay_to(
        self, target: int, phase: Phase, progress: ProgressCallback | None
    ) -> None:
        """Applies the log up to ``target`` in batches, one transaction each."""
        self._replay(target, phase, progress, connection=None)

    def replay_within(
        self, connection: Connection, target: int, progress: ProgressCallback | None
    ) -> None:
        """Applies the log up to ``target`` inside the caller's transaction."""
        self._replay(target, "catching up", progress, connection=connection)

    def _replay(
        self,
        target: int,
        phase: Phase,
        progress: ProgressCallback | None,
        connection: Connection | None,
    ) -> None:
        if progress is not None:
            progress(RebuildStep(self.projection.name, phase, self.position, target))
        while self.position < target:
            batch = self.source.read(self.position, self.batch_size, up_to=target)
            # An empty read means nothing is stored in (position, target]: a
            # gap left by rolled-back writes; the position still moves on.
            new_position = batch[-1].id if batch else target
            events = self._decoded(batch)
            self._apply(events, new_position, connection)
            self.notifications_read += len(batch)
            self.events_applied += len(events)
            if progress is not None:
                progress(
                    RebuildStep(self.projection.name, phase, self.position, target)
                )

    def _decoded(self, batch: Sequence[Notification]) -> list[object]:
        """The events of ``batch`` the projection handles. An event that cannot
        be decoded is passed over and remembered, as the live projection
        parks it: the log is append-only, so failing here would leave the
        projection unrebuildable for good."""
        events: list[object] = []
        for notification in batch:
            try:
                if notification.topic in self.topics:
                    events.append(self.source.decode(notification))
                else:
                    self.source.check_topic(notification)
            except ValueError as error:
                self.undecodable.append(str(error))
        return events

    def _apply(
        self, events: Sequence[object], new_position: int, connection: Connection | None
    ) -> None:
        if connection is None:
            applied = self.store.positions.apply(
                self.projection,
                self.generation,
                events,
                expected_position=self.position,
                new_position=new_position,
                # No reader sees the shadow, and the shadow of a rebuild that
                # crashed is never served: its last commits can be lost.
                durable=False,
            )
        else:
            applied = self.store.positions.apply_within(
                connection,
                self.projection,
                self.generation,
                events,
                expected_position=self.position,
                new_position=new_position,
            )
        if not applied:
            raise RebuildError(
                f"generation {self.generation} of {self.projection.name} "
                "was written by someone else during its rebuild"
            )
        self.position = new_position


def _freeze_live(
    store: ViewStore,
    projection: type[ReadModel],
    live: ActiveGeneration,
    shadow: _Shadow,
    connection: Connection,
) -> int:
    """Locks the registry row and the live position for the rest of the
    caller's transaction and returns that position.

    SQLite: the store's write transaction already holds the database's write
    lock. PostgreSQL: the registry row is locked FOR UPDATE (live batches take
    it FOR SHARE first), then the live tracking row FOR UPDATE; a batch in
    flight finishes first, the next one waits and then sees the switch."""
    if store.registry.read(connection, projection, lock="update") != live:
        raise RebuildError(
            f"readers of {projection.name} were switched to another generation "
            "during the rebuild"
        )
    live_position = (
        store.positions.locked_position(
            connection,
            subscriber_name(projection, live.generation),
            projection.follows,
        )
        or 0
    )
    if live_position < shadow.position:
        raise RebuildError(
            f"generation {live.generation} of {projection.name} moved back from "
            f"{shadow.position} to {live_position} during the rebuild"
        )
    return live_position
