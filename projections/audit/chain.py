"""Tamper evidence for the event logs: a hash chain over each service's stored
events, recorded in the view database as the logs grow.

Each link is the SHA-256 of the previous link and one stored event (its
position, originator, version, topic and state bytes), so a link vouches for
the whole log up to its position. Verifying walks the stored log and the
recorded links side by side and names the first position where they part:

* ``altered``: the event at a recorded position is not what was recorded;
* ``removed``: a recorded position is missing from the log;
* ``inserted``: the log holds a position the chain skipped, below its head.

Events after the last recorded link are ``unrecorded``: the chain is behind,
which is not tampering. Both sides are read in pages, never whole, because a
log can hold millions of events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, Protocol
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
)

from projections.store import ViewStore

GENESIS = bytes(32)
"""The link before the first event of every log."""

DEFAULT_PAGE_SIZE = 1000

chain_metadata = MetaData()

chain_table = Table(
    "eventshop_chain",
    chain_metadata,
    Column("service", String(100), primary_key=True),
    Column("position", BigInteger, primary_key=True),
    # Hex, so that the chain can be read (and compared by hand) in any SQL shell.
    Column("link", String(64), nullable=False),
)


class StoredNotification(Protocol):
    """What a link covers of one stored event (an eventsourcing ``Notification``)."""

    @property
    def id(self) -> int: ...
    @property
    def originator_id(self) -> UUID | str: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def state(self) -> bytes: ...


def _field(data: bytes) -> bytes:
    # A length before every field: no two different events share an encoding,
    # however their bytes are split between topic and state.
    return len(data).to_bytes(8, "big") + data


def link(previous: bytes, notification: StoredNotification) -> bytes:
    """The link that follows ``previous`` for one stored event."""
    if len(previous) != len(GENESIS):
        raise ValueError(f"a link is {len(GENESIS)} bytes, got {len(previous)}")
    digest = hashlib.sha256()
    for data in (
        previous,
        notification.id.to_bytes(8, "big", signed=True),
        str(notification.originator_id).encode(),
        notification.originator_version.to_bytes(8, "big", signed=True),
        notification.topic.encode(),
        bytes(notification.state),
    ):
        digest.update(_field(data))
    return digest.digest()


@dataclass(frozen=True)
class ChainHead:
    """The last recorded link of a service's chain."""

    position: int
    link: bytes


VerdictKind = Literal["intact", "altered", "removed", "inserted"]


@dataclass(frozen=True)
class ChainVerdict:
    """What verifying one service's log against its chain found."""

    service: str
    kind: VerdictKind
    position: int | None
    """The first position where log and chain part; None when intact."""
    checked: int
    """Events whose link matched before the walk stopped."""
    head: int
    """The last recorded position when the verification started (0: none)."""
    unrecorded: int
    """Events after ``head`` (the chain is behind); only counted when intact."""
    head_link: bytes = GENESIS
    """The link at ``head``: vouches for the whole log up to it, so a copy
    kept elsewhere also reveals a log rewritten together with its chain."""

    @property
    def intact(self) -> bool:
        return self.kind == "intact"

    def describe(self) -> str:
        if self.kind == "intact":
            behind = (
                f"; {self.unrecorded} newer events not yet chained"
                if self.unrecorded
                else ""
            )
            return f"intact: {self.checked} events checked up to {self.head}{behind}"
        what = {
            "altered": "the stored event differs from the one chained",
            "removed": "a chained event is missing from the log",
            "inserted": "the log holds an event the chain never had",
        }[self.kind]
        return (
            f"{self.kind} at position {self.position}: {what} "
            f"({self.checked} events matched before it)"
        )


class ChainGapError(ValueError):
    """A batch does not continue the recorded chain: extending with it would
    leave positions unchained. Nothing was written."""

    def __init__(self, service: str, head: int, after: int) -> None:
        self.service = service
        self.head = head
        self.after = after
        super().__init__(
            f"the {service} chain ends at {head}, the batch was read after {after}"
        )


@dataclass(frozen=True)
class _RecordedLink:
    position: int
    link: bytes


def _lock_key(service: str) -> int:
    digest = hashlib.sha256(f"eventshop chain {service}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class ChainStore:
    """The recorded links of every service, in the view database."""

    def __init__(self, store: ViewStore, *, page_size: int = DEFAULT_PAGE_SIZE):
        if page_size < 1:
            raise ValueError("page_size must be positive")
        self.store = store
        self.page_size = page_size

    def create_schema(self) -> None:
        """Creates the chain table if missing; safe from many processes at once."""
        with self.store.database.schema_change() as connection:
            chain_metadata.create_all(connection)

    def may_add_links(self) -> bool:
        """Whether this store's connections may add links: a read-only role
        (the auditor of ``eventshop db roles``) verifies what others chained."""
        if not self.store.database.is_postgres:
            return True
        with self.store.engine.connect() as connection:
            return bool(
                connection.execute(
                    select(func.has_table_privilege(chain_table.name, "INSERT"))
                ).scalar_one()
            )

    def head(self, service: str) -> ChainHead | None:
        """The last recorded link, None when nothing is chained yet."""
        with self.store.engine.connect() as connection:
            return self._head(connection, service)

    @staticmethod
    def _head(connection: Connection, service: str) -> ChainHead | None:
        row = connection.execute(
            select(chain_table.c.position, chain_table.c.link)
            .where(chain_table.c.service == service)
            .order_by(chain_table.c.position.desc())
            .limit(1)
        ).one_or_none()
        if row is None:
            return None
        return ChainHead(row.position, bytes.fromhex(row.link))

    def extend(
        self,
        service: str,
        notifications: Sequence[StoredNotification],
        *,
        after: int,
    ) -> int:
        """Chains ``notifications``, every stored event after position ``after``
        up to some position, in order, and returns the new head position.

        In one transaction. Positions already chained are skipped, so a batch
        can be offered twice; a batch read after a position beyond the
        chain's head is refused with :class:`ChainGapError`, since events
        between the two would never be chained."""
        positions = [notification.id for notification in notifications]
        if any(a >= b for a, b in pairwise(positions)):
            raise ValueError("notifications must be in increasing position order")
        if positions and positions[0] <= after:
            raise ValueError(f"notifications must come after position {after}")
        with self.store.writer.begin() as connection:
            if self.store.is_postgres:
                # Two keepers of one service (embedded shops, workers) take
                # turns instead of racing for the same positions.
                connection.execute(
                    select(func.pg_advisory_xact_lock(_lock_key(service)))
                )
            head = self._head(connection, service)
            position = 0 if head is None else head.position
            previous = GENESIS if head is None else head.link
            if after > position:
                raise ChainGapError(service, position, after)
            rows = []
            for notification in notifications:
                if notification.id <= position:
                    continue
                previous = link(previous, notification)
                position = notification.id
                rows.append(
                    {"service": service, "position": position, "link": previous.hex()}
                )
            if rows:
                connection.execute(insert(chain_table), rows)
        return position

    def links(
        self, service: str, *, up_to: int | None = None
    ) -> Iterator[_RecordedLink]:
        """The recorded links in position order, a page at a time."""
        after: int | None = None
        while True:
            query = select(chain_table.c.position, chain_table.c.link).where(
                chain_table.c.service == service
            )
            if after is not None:
                query = query.where(chain_table.c.position > after)
            if up_to is not None:
                query = query.where(chain_table.c.position <= up_to)
            with self.store.engine.connect() as connection:
                page = connection.execute(
                    query.order_by(chain_table.c.position).limit(self.page_size)
                ).all()
            for row in page:
                yield _RecordedLink(row.position, bytes.fromhex(row.link))
            if len(page) < self.page_size:
                return
            after = page[-1].position

    def verify(
        self, service: str, notifications: Iterable[StoredNotification]
    ) -> ChainVerdict:
        """Walks the stored log (``notifications``, every stored event in
        position order, best read in pages) alongside the recorded links and
        returns the first place they part, or that the log is intact."""
        head = self.head(service)
        head_position = 0 if head is None else head.position
        head_link = GENESIS if head is None else head.link
        # Links recorded after this call started are left to the next one:
        # the log may have been read past them already.
        recorded = self.links(service, up_to=head_position)
        log = iter(notifications)
        previous = GENESIS
        checked = 0

        def verdict(
            kind: VerdictKind, position: int | None, unrecorded: int = 0
        ) -> ChainVerdict:
            return ChainVerdict(
                service, kind, position, checked, head_position, unrecorded, head_link
            )

        expected = next(recorded, None)
        stored = next(log, None)
        while expected is not None:
            if stored is None or stored.id > expected.position:
                return verdict("removed", expected.position)
            if stored.id < expected.position:
                return verdict("inserted", stored.id)
            previous = link(previous, stored)
            if previous != expected.link:
                return verdict("altered", stored.id)
            checked += 1
            expected = next(recorded, None)
            stored = next(log, None)
        unrecorded = 0
        while stored is not None:
            unrecorded += 1
            stored = next(log, None)
        return verdict("intact", None, unrecorded)
