"""A synchronous face over nats-py's JetStream client, for the shop's worker
threads: the client's asyncio loop runs in a daemon thread of its own, and
each call waits for its coroutine there, within a timeout.

Every failure to reach the broker, or to hear back from it in time, becomes a
:class:`BrokerUnavailableError`, so that callers wait it out as they wait out
a database outage; a message the stream refuses (a publish whose expected
last sequence is not the stream's) is a :class:`PublishRefusedError`."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from domain.errors import StorageUnavailableError

T = TypeVar("T")

DEFAULT_TIMEOUT_SECONDS = 5.0
EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"
# JetStream's error codes for a failed "expected last message id" and
# "expected last sequence" check.
_WRONG_LAST = frozenset({10070, 10071})
# How long a consumer waits for a message's acknowledgement before it delivers
# the message again: far longer than a batch takes, so that a redelivery means
# the consumer before this one died with the message in hand.
ACK_WAIT_SECONDS = 60.0


class BrokerUnavailableError(StorageUnavailableError, ConnectionError):
    """The broker cannot be reached, or did not answer in time: a passing
    fault, waited out as a database's is (``application.persistence.transient``)."""

    waiting_for = "the broker"


class PublishRefusedError(RuntimeError):
    """The stream refused a message (its expectations did not hold)."""

    def __init__(self, message: str, *, wrong_last_message: bool) -> None:
        super().__init__(message)
        self.wrong_last_message = wrong_last_message
        """The stream's last message was not the one the publisher expected:
        another publisher, or an earlier run, got there first."""


@dataclass(frozen=True)
class Outgoing:
    subject: str
    payload: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Published:
    """What came of publishing a run of messages."""

    acknowledged: int
    """How many of them, from the first, the stream stored."""
    last_sequence: int
    """The stream sequence of the last of those (0 if none was)."""
    failure: Exception | None
    """Why the rest were not (a BrokerUnavailableError or a
    PublishRefusedError), if they were not."""


@dataclass(frozen=True)
class StoredMessage:
    sequence: int
    subject: str
    headers: dict[str, str]
    payload: bytes


@dataclass(frozen=True)
class DeliveredMessage:
    """A message a consumer delivered; ``ack`` it once handled."""

    sequence: int
    """Its sequence number in the stream."""
    headers: dict[str, str]
    payload: bytes
    delivery: Msg = field(repr=False)


@dataclass(frozen=True)
class StreamState:
    first_sequence: int
    last_sequence: int
    messages: int


@dataclass(frozen=True)
class ConsumerState:
    """Where a durable consumer stands in its stream."""

    acknowledged: int
    """The stream sequence up to which every message was acknowledged (0 for
    a consumer made anew that has acknowledged nothing yet, wherever it
    started)."""
    delivered: int
    """The stream sequence of the last message delivered."""
    pending: int
    """Messages of the stream not yet delivered to it."""
    ack_pending: int
    """Messages delivered to it and not yet acknowledged."""

    @property
    def unacknowledged(self) -> int:
        """Messages of the stream, from where it started, that it has not
        acknowledged: how far it is behind the stream's end."""
        return self.pending + self.ack_pending


class JetStream:
    """One connection to a NATS server with JetStream, used from any thread."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        self.url = url
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"nats {url}", daemon=True
        )
        self._thread.start()
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        # The pull subscriptions bound over the current connection, by stream
        # and consumer (a new connection binds them anew).
        self._pulls: dict[tuple[str, str], JetStreamContext.PullSubscription] = {}

    # -- connection ------------------------------------------------------------

    def connect(self) -> None:
        """Connects if not connected (raises BrokerUnavailableError); every
        other call connects first as well."""
        self._run(self._context())

    async def _connect(self) -> None:
        if self._client is not None:
            await self._client.close()
        self._pulls.clear()
        # Reconnecting is left to the caller: a call fails at once while the
        # broker is away, and the caller's backoff decides when to try again.
        client = await nats.connect(
            self.url,
            connect_timeout=max(1, int(self.timeout)),
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.1,
            # What fails is raised to the caller, which reports it; the
            # client's own logging of it would say it again for every try.
            error_cb=_ignore,
        )
        self._client = client
        self._js = client.jetstream(timeout=self.timeout)

    def close(self) -> None:
        try:
            if self._client is not None:
                self._run(self._client.close())
        except BrokerUnavailableError:
            pass
        finally:
            self._client = self._js = None
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self.timeout)
            if not self._thread.is_alive():
                self._loop.close()

    # -- streams ---------------------------------------------------------------

    def ensure_stream(
        self,
        name: str,
        subjects: Sequence[str],
        *,
        duplicate_window: float | None = None,
    ) -> None:
        """Creates the stream if it is missing (file storage, its messages
        deduplicated by id within ``duplicate_window`` seconds, by default the
        broker's: two minutes)."""
        self._run(self._ensure_stream(name, list(subjects), duplicate_window))

    async def _ensure_stream(
        self, name: str, subjects: list[str], duplicate_window: float | None
    ) -> None:
        js = await self._context()
        try:
            await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(
                name=name, subjects=subjects, duplicate_window=duplicate_window
            )

    def last_message(self, stream: str) -> StoredMessage | None:
        """The stream's last message, or None if it holds none."""
        return self._run(self._last_message(stream))

    async def _last_message(self, stream: str) -> StoredMessage | None:
        js = await self._context()
        info = await js.stream_info(stream)
        last = info.state.last_seq
        if not last or not info.state.messages:
            return None
        return await self._message_at(stream, last)

    def message_at(self, stream: str, sequence: int) -> StoredMessage:
        """The message the stream holds at ``sequence``."""
        return self._run(self._message_at(stream, sequence))

    async def _message_at(self, stream: str, sequence: int) -> StoredMessage:
        js = await self._context()
        raw = await js.get_msg(stream, seq=sequence)
        return StoredMessage(
            sequence=sequence,
            subject=raw.subject or "",
            headers=dict(raw.headers or {}),
            payload=raw.data or b"",
        )

    def last_sequence(self, stream: str) -> int:
        """The sequence number of the stream's last message (0 if none)."""
        return self._run(self._last_sequence(stream))

    async def _last_sequence(self, stream: str) -> int:
        js = await self._context()
        info = await js.stream_info(stream)
        return int(info.state.last_seq or 0)

    def stream_state(self, stream: str) -> StreamState | None:
        """How many messages the stream holds, from which sequence to which;
        None if there is no such stream (yet: its relay makes it)."""
        return self._run(self._stream_state(stream))

    async def _stream_state(self, stream: str) -> StreamState | None:
        js = await self._context()
        try:
            state = (await js.stream_info(stream)).state
        except nats.js.errors.NotFoundError:
            return None
        return StreamState(
            first_sequence=int(state.first_seq or 0),
            last_sequence=int(state.last_seq or 0),
            messages=int(state.messages or 0),
        )

    # -- consuming -------------------------------------------------------------

    def start_consumer(self, stream: str, consumer: str, start_sequence: int) -> None:
        """(Re)creates the durable pull consumer ``consumer`` of ``stream`` so
        that it delivers from ``start_sequence`` on, in order; every message
        acknowledged acknowledges those before it."""
        self._run(self._start_consumer(stream, consumer, start_sequence))

    async def _start_consumer(
        self, stream: str, consumer: str, start_sequence: int
    ) -> None:
        js = await self._context()
        self._pulls.pop((stream, consumer), None)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(stream, consumer)
        await js.add_consumer(
            stream,
            config=api.ConsumerConfig(
                name=consumer,
                durable_name=consumer,
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=max(start_sequence, 1),
                ack_policy=api.AckPolicy.ALL,
                ack_wait=ACK_WAIT_SECONDS,
                max_ack_pending=-1,
            ),
        )

    def fetch(
        self, stream: str, consumer: str, batch: int, timeout: float
    ) -> list[DeliveredMessage]:
        """Up to ``batch`` messages from the consumer, waiting up to
        ``timeout`` seconds for the first (then none)."""
        return self._run(self._fetch(stream, consumer, batch, timeout))

    async def _fetch(
        self, stream: str, consumer: str, batch: int, timeout: float
    ) -> list[DeliveredMessage]:
        js = await self._context()
        pull = self._pulls.get((stream, consumer))
        if pull is None:
            pull = await js.pull_subscribe_bind(consumer, stream)
            self._pulls[(stream, consumer)] = pull
        try:
            messages = await pull.fetch(batch, timeout=max(timeout, 0.01))
        except (TimeoutError, nats.errors.TimeoutError):
            # Nothing came within the time: not a fault.
            return []
        return [
            DeliveredMessage(
                sequence=message.metadata.sequence.stream,
                headers=dict(message.headers or {}),
                payload=message.data or b"",
                delivery=message,
            )
            for message in messages
        ]

    def ack(self, message: DeliveredMessage) -> None:
        """Acknowledges ``message`` (and, the consumer acknowledging all,
        every one delivered before it)."""
        self._run(message.delivery.ack())

    def consumer_state(self, stream: str, consumer: str) -> ConsumerState | None:
        """Where the durable consumer stands, or None if there is none."""
        return self._run(self._consumer_state(stream, consumer))

    async def _consumer_state(self, stream: str, consumer: str) -> ConsumerState | None:
        js = await self._context()
        try:
            info = await js.consumer_info(stream, consumer)
        except nats.js.errors.NotFoundError:
            return None
        return ConsumerState(
            acknowledged=info.ack_floor.stream_seq if info.ack_floor else 0,
            delivered=info.delivered.stream_seq if info.delivered else 0,
            pending=int(info.num_pending or 0),
            ack_pending=int(info.num_ack_pending or 0),
        )

    # -- publishing ------------------------------------------------------------

    def publish_in_order(self, messages: Sequence[Outgoing]) -> Published:
        """Publishes ``messages`` and waits for the broker's acknowledgements.
        They are sent without waiting for each other's; callers chain them
        with the expected last sequence, so that none is stored after one
        that was not. Says how many, from the first, were acknowledged, and
        what stopped the others."""
        return self._run(self._publish_in_order(list(messages)))

    async def _publish_in_order(self, messages: list[Outgoing]) -> Published:
        js = await self._context()
        pending = [
            asyncio.ensure_future(
                js.publish(m.subject, m.payload, headers=dict(m.headers))
            )
            for m in messages
        ]
        acknowledged = last_sequence = 0
        failure: Exception | None = None
        for future in pending:
            try:
                ack = await future
            except Exception as error:
                failure = failure or _translated(error)
                continue
            if failure is None:
                acknowledged += 1
                last_sequence = ack.seq
        return Published(acknowledged, last_sequence, failure)

    # -- the loop --------------------------------------------------------------

    async def _context(self) -> JetStreamContext:
        """The JetStream context, connecting first if not connected."""
        if self._js is None or self._client is None or not self._client.is_connected:
            await self._connect()
        assert self._js is not None
        return self._js

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(self.timeout * 2)
        except FutureTimeout:
            # The same class as the TimeoutError a call may raise itself.
            if future.done():
                failure = future.exception()
                raise _translated(
                    failure if isinstance(failure, Exception) else TimeoutError()
                ) from None
            future.cancel()
            raise BrokerUnavailableError(
                f"no answer from {self.url} in {self.timeout * 2:g} s"
            ) from None
        except (
            TimeoutError,
            nats.errors.Error,
            nats.js.errors.Error,
            OSError,
        ) as error:
            raise _translated(error) from error


async def _ignore(error: Exception) -> None:
    return None


def _translated(error: Exception) -> Exception:
    """The error a caller handles for one the client raised."""
    if isinstance(error, nats.js.errors.APIError) and not isinstance(
        error, nats.js.errors.ServiceUnavailableError
    ):
        return PublishRefusedError(
            f"the stream refused a message: {error.description or error}",
            wrong_last_message=error.err_code in _WRONG_LAST,
        )
    return BrokerUnavailableError(f"broker unavailable: {error!r}")
