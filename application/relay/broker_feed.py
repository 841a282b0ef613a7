"""A subscriber fed by the broker: it reads the service's JetStream stream (see
``application.relay.relay``) instead of the service's log, through a durable
pull consumer of its own, and its runner is the same as for the log itself
(``application.subscribers.runner``): it hands each batch to the subscriber,
which records the batch's effects and the new position in one transaction of
its own database; only then is the batch acknowledged.

The stored position stays the truth, as when the log is read directly:

* Whenever its runner (re)starts from a stored position, the consumer is made
  anew to deliver from the first message after that position (found by its
  position header, a binary search of the stream), so that whatever the
  consumer had delivered and not had acknowledged before is neither skipped
  nor taken twice.
* A message delivered again (its acknowledgement lost or late) has a stream
  sequence this feed has passed, and is dropped; a message beyond one the
  consumer has not delivered (a hole) makes it start again from where it got.
* An event published twice beyond the broker's deduplication window is a
  second message with a position the feed has passed, and is dropped.

Acknowledging a message acknowledges those before it (the consumer's
``AckPolicy.ALL``), so a batch costs one acknowledgement.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from application.relay.jetstream import DeliveredMessage, JetStream, StreamState
from application.relay.messages import POSITION_HEADER, RelayedEvent, stream_name
from application.subscribers.shared_log import LoggedEvent

if TYPE_CHECKING:
    import threading

    from application.subscribers.decoding import Decode


class MalformedMessageError(RuntimeError):
    """A message of a service's stream is not a relayed event: the stream
    holds what no relay of eventshop published."""


def consumer_name(subscriber: str) -> str:
    """The durable consumer a subscriber reads a stream through."""
    return f"eventshop_{subscriber}"


class BrokerLog:
    """The stream of service ``name`` as one subscriber's feed (see the
    module's docstring); it owns its connection to the broker."""

    def __init__(
        self, name: str, subscriber: str, broker: JetStream, decode: Decode
    ) -> None:
        self.name = name
        self.stream = stream_name(name)
        self.consumer = consumer_name(subscriber)
        self.broker = broker
        self._decode = decode
        self.restarts = 0
        """How often the consumer was made anew (each start of its runner,
        and after a hole)."""
        self.redeliveries = 0
        """Messages dropped as delivered before, or as published before."""

    @contextmanager
    def follow(self) -> Iterator[BrokerFollower]:
        yield BrokerFollower(self)

    def head(self) -> int | None:
        # The stream lags the log while the relay catches up: a position past
        # its end is one to wait for, not a sign of another log.
        return None

    def interrupt(self) -> None:
        """Nothing: a fetch waits at most the runner's idle wait."""

    def close(self) -> None:
        self.broker.close()

    def decode_once(self, entry: LoggedEvent) -> object:
        # One follower per feed: nobody else decodes its events.
        return self._decode(entry.notification)

    def sequence_after(self, position: int, state: StreamState) -> int:
        """The stream sequence of the first message after log ``position``
        (one past the stream's end if there is none): the stream holds the
        log in order, so its position headers only grow."""
        low, high = state.first_sequence, state.last_sequence + 1
        if not state.messages:
            return high
        while low < high:
            middle = (low + high) // 2
            message = self.broker.message_at(self.stream, middle)
            if _position_of(message.headers) <= position:
                low = middle + 1
            else:
                high = middle
        return low


class BrokerFollower:
    """One stretch of a runner reading a stream, from a stored position."""

    def __init__(self, log: BrokerLog) -> None:
        self._log = log
        self._at: int | None = None
        """The position the consumer delivers after (None: to be started)."""
        self._next_sequence = 0
        self._unacknowledged: deque[tuple[int, DeliveredMessage]] = deque()

    def batch_after(
        self,
        position: int | None,
        *,
        limit: int,
        timeout: float,
        stopping: threading.Event | None = None,
    ) -> Sequence[LoggedEvent]:
        """Up to ``limit`` events after ``position``, in log order, waiting up
        to ``timeout`` seconds for one (then empty). Raises
        BrokerUnavailableError if the broker is away."""
        log = self._log
        position = position or 0
        if self._at != position and not self._start_at(position):
            if stopping is not None:
                stopping.wait(timeout)
            return ()
        messages = log.broker.fetch(log.stream, log.consumer, limit, timeout)
        batch: list[LoggedEvent] = []
        for message in messages:
            if message.sequence < self._next_sequence:
                log.redeliveries += 1
                continue
            if message.sequence > self._next_sequence:
                # The consumer skipped a message: start again from what was
                # taken (the rest of this fetch comes again, in order).
                self._at = None
                return batch
            self._next_sequence = message.sequence + 1
            event = _relayed(message).notification
            self._unacknowledged.append((event.id, message))
            if event.id <= position:
                log.redeliveries += 1
                continue
            batch.append(LoggedEvent(event, log))
            position = event.id
        self._at = position
        return batch

    def handled_up_to(self, position: int) -> None:
        """Acknowledges what was delivered up to ``position`` (recorded)."""
        last: DeliveredMessage | None = None
        pending = self._unacknowledged
        while pending and pending[0][0] <= position:
            last = pending.popleft()[1]
        if last is not None:
            self._log.broker.ack(last)

    def _start_at(self, position: int) -> bool:
        """Makes the consumer deliver after ``position``; False if the stream
        does not exist yet (its relay has not started)."""
        log = self._log
        state = log.broker.stream_state(log.stream)
        if state is None:
            return False
        sequence = log.sequence_after(position, state)
        log.broker.start_consumer(log.stream, log.consumer, sequence)
        log.restarts += 1
        self._next_sequence = sequence
        self._unacknowledged.clear()
        self._at = position
        return True


def _position_of(headers: dict[str, str]) -> int:
    try:
        return int(headers[POSITION_HEADER])
    except (KeyError, ValueError):
        raise MalformedMessageError(
            f"a message without a valid {POSITION_HEADER} header"
        ) from None


def _relayed(message: DeliveredMessage) -> RelayedEvent:
    try:
        return RelayedEvent.from_payload(message.payload)
    except ValueError as error:
        raise MalformedMessageError(
            f"stream message {message.sequence} is not a relayed event: {error}"
        ) from None
