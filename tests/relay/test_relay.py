"""The relay publishes a service's log to its JetStream stream, in order, each
event once, and records how far only after the broker acknowledged; it
resumes where the acknowledgements stopped and waits out a broker that is
away. Against a NATS server of the test's own."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from application import Shop
from application.cli import main
from application.relay.jetstream import (
    EXPECTED_LAST_SEQUENCE,
    BrokerUnavailableError,
    JetStream,
    Outgoing,
    Published,
    PublishRefusedError,
    StoredMessage,
)
from application.relay.messages import (
    MESSAGE_ID_HEADER,
    RelayedEvent,
    message_id,
    stream_name,
    stream_subjects,
)
from application.relay.relay import EventRelay
from application.services.audit_metadata import acting_as
from tests.projections.runner_testing import eventually
from tests.support.private_nats import PrivateNats, private_nats

TEA = "TEA-1"


def shop_with_carts(shop: Shop, carts: int) -> None:
    shop.register_product(TEA, "Tea", "3.50")
    for number in range(carts):
        with acting_as(f"customer-{number}"):
            cart_id = shop.open_cart(f"customer-{number}")
            shop.add_to_cart(cart_id, TEA, 1)


def stream_messages(broker: JetStream, service: str) -> list[StoredMessage]:
    stream = stream_name(service)
    count = broker.last_sequence(stream)
    return [broker.message_at(stream, sequence) for sequence in range(1, count + 1)]


def log_positions(shop: Shop, service: str) -> list[int]:
    recorder = shop.services[service].recorder
    return [n.id for n in recorder.select_notifications(0, 10_000)]


def relayed_positions(broker: JetStream, service: str) -> list[int]:
    return [
        RelayedEvent.from_payload(m.payload).notification.id
        for m in stream_messages(broker, service)
    ]


def test_the_log_is_published_in_order_one_message_per_event(
    shop: Shop, broker: JetStream
) -> None:
    shop_with_carts(shop, 3)
    relay = EventRelay(shop.carts, broker)

    reached = relay.relay_once()

    positions = log_positions(shop, "Carts")
    assert reached == positions[-1]
    assert relay.position() == positions[-1]
    messages = stream_messages(broker, "Carts")
    assert [m.headers[MESSAGE_ID_HEADER] for m in messages] == [
        message_id("Carts", position) for position in positions
    ]
    first = messages[0]
    assert first.subject == "eventshop.carts.Cart.Opened"
    # each expects the one before it at the stream's end
    assert [m.headers[EXPECTED_LAST_SEQUENCE] for m in messages] == [
        str(m.sequence - 1) for m in messages
    ]


def test_a_message_carries_the_event_as_stored_and_what_it_was_recorded_with(
    shop: Shop, broker: JetStream
) -> None:
    shop_with_carts(shop, 1)
    EventRelay(shop.carts, broker).relay_once()

    [opened, added] = stream_messages(broker, "Carts")
    relayed = RelayedEvent.from_payload(added.payload)
    body: dict[str, Any] = json.loads(added.payload)

    stored = shop.carts.recorder.select_notifications(0, 10)[1]
    assert relayed.notification == stored
    assert relayed.metadata is not None
    assert relayed.metadata["actor"] == "customer-0"
    assert relayed.metadata["correlation_id"]
    assert body["topic"] == stored.topic
    assert body["originator_version"] == stored.originator_version
    # decoded by the service's own mapper, it is the event the service stored
    event = shop.carts.mapper.to_domain_event(relayed.notification)
    assert body["recorded_at"] == getattr(event, "timestamp").isoformat()  # noqa: B009
    assert type(event).__qualname__ == "Cart.ItemAdded"
    assert opened.subject == "eventshop.carts.Cart.Opened"


def test_a_new_relay_resumes_where_the_last_one_stopped(
    shop: Shop, broker: JetStream
) -> None:
    shop_with_carts(shop, 2)
    EventRelay(shop.carts, broker).relay_once()
    shop_with_more = shop.open_cart("late")
    shop.add_to_cart(shop_with_more, TEA, 2)

    EventRelay(shop.carts, broker).relay_once()

    assert relayed_positions(broker, "Carts") == log_positions(shop, "Carts")


def test_acknowledged_but_unrecorded_messages_are_not_published_again(
    shop: Shop, broker: JetStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a relay killed after the broker acknowledged, before it recorded
    shop_with_carts(shop, 2)
    crashed = EventRelay(shop.carts, broker)
    monkeypatch.setattr(crashed, "_record", lambda position: None)
    crashed.relay_once()
    assert crashed.position() == 0
    monkeypatch.undo()

    # when another relay starts
    resumed = EventRelay(shop.carts, broker)
    resumed.relay_once()

    # then it took the stream's word for how far, and published nothing twice
    positions = log_positions(shop, "Carts")
    assert resumed.position() == positions[-1]
    assert relayed_positions(broker, "Carts") == positions


def test_two_relays_racing_publish_every_event_once_in_order(
    shop: Shop, broker: JetStream, nats_server: PrivateNats
) -> None:
    shop_with_carts(shop, 30)
    second = JetStream(nats_server.url, timeout=2.0)
    try:
        relays = [
            EventRelay(shop.carts, broker, page_size=7),
            EventRelay(shop.carts, second, page_size=5),
        ]
        errors: list[BaseException] = []

        def run(relay: EventRelay) -> None:
            try:
                relay.relay_once()
            except Exception as error:
                errors.append(error)
                raise

        threads = [threading.Thread(target=run, args=(r,)) for r in relays]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        second.close()

    assert errors == []
    assert relayed_positions(broker, "Carts") == log_positions(shop, "Carts")


def test_a_republished_message_is_dropped_by_the_brokers_id_window(
    shop: Shop, broker: JetStream
) -> None:
    shop_with_carts(shop, 1)
    EventRelay(shop.carts, broker).relay_once()
    [first, *_] = stream_messages(broker, "Carts")
    count = broker.last_sequence(stream_name("Carts"))

    again = broker.publish_in_order(
        [
            Outgoing(
                first.subject,
                first.payload,
                {MESSAGE_ID_HEADER: first.headers[MESSAGE_ID_HEADER]},
            )
        ]
    )

    assert again.failure is None
    assert broker.last_sequence(stream_name("Carts")) == count


def test_a_broker_that_is_away_is_waited_out_and_reported(shop: Shop) -> None:
    shop_with_carts(shop, 2)
    states: list[tuple[str, str | None]] = []
    with private_nats(started=False) as server:
        client = JetStream(server.url, timeout=1.0)
        relay = EventRelay(
            shop.carts,
            client,
            report=lambda state, error: states.append((state, error)),
        )
        with pytest.raises(BrokerUnavailableError):
            relay.relay_once()
        relay.start()
        try:
            deadline = time.monotonic() + 10
            while not any(state == "waiting" for state, _ in states):
                assert time.monotonic() < deadline, states
                time.sleep(0.05)
            assert relay.is_alive
            # the shop's commands go on while the broker is away
            shop.open_cart("while-away")

            server.start()
            head = log_positions(shop, "Carts")[-1]
            deadline = time.monotonic() + 20
            while relay.position() < head:
                assert time.monotonic() < deadline, (relay.position(), head, states)
                assert relay.error is None, relay.error
                time.sleep(0.05)
        finally:
            relay.stop()
            relay.join(10)
            client.close()
        assert relay.error is None
        check = JetStream(server.url, timeout=2.0)
        try:
            assert relayed_positions(check, "Carts") == log_positions(shop, "Carts")
        finally:
            check.close()


class TestTheRelayCommand:
    def test_once_publishes_the_log_and_says_how_far(
        self,
        tmp_path: Path,
        nats_server: PrivateNats,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        with Shop(data_dir=tmp_path, subscribers="workers") as shop:
            shop_with_carts(shop, 2)
            head = log_positions(shop, "Carts")[-1]

        code = main(
            [
                "relay",
                "carts",
                "--once",
                "--nats",
                nats_server.url,
                "--data-dir",
                str(tmp_path),
            ]
        )

        assert code == 0
        assert f"published up to {head}" in capsys.readouterr().out
        check = JetStream(nats_server.url, timeout=2.0)
        try:
            assert check.last_sequence(stream_name("Carts")) == head
        finally:
            check.close()

    def test_a_broker_that_does_not_answer_is_one_line_and_exit_1(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with private_nats(started=False) as server:
            code = main(
                [
                    "relay",
                    "carts",
                    "--once",
                    "--nats",
                    server.url,
                    "--data-dir",
                    str(tmp_path),
                ]
            )
        captured = capsys.readouterr()
        assert code == 1
        assert "Traceback" not in captured.out + captured.err
        assert captured.out.startswith("relay Carts: broker unavailable")
        assert len(captured.out.strip().splitlines()) == 1

    @pytest.mark.parametrize("url", ["http://127.0.0.1:4222", "nats" + "x" * 3000])
    def test_a_bad_nats_url_is_refused_before_anything_is_opened(
        self, tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code = main(["relay", "carts", "--nats", url, "--data-dir", str(tmp_path)])

        # argparse's usage, then its one-line error
        err = capsys.readouterr().err
        assert code == 2
        assert "Traceback" not in err
        assert "argument --nats: " in err.splitlines()[-1]
        assert "is not a NATS URL" in err.splitlines()[-1]
        assert not (tmp_path / "carts.sqlite3").exists()


def test_a_relay_asked_to_stop_stops_between_pages_of_a_backlog(
    shop: Shop, broker: JetStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop_with_carts(shop, 10)
    relay = EventRelay(shop.carts, broker, page_size=3)
    published_pages: list[int] = []
    publish = relay._publish

    def publish_then_stop(page: Any, *, after: int) -> int:
        published_pages.append(len(page))
        relay.stopping.set()  # as stop() would, from another thread
        return publish(page, after=after)

    monkeypatch.setattr(relay, "_publish", publish_then_stop)
    reached = relay.relay_once()

    assert published_pages == [3]
    assert reached == relay.position() == log_positions(shop, "Carts")[2]


def test_a_lost_database_connection_is_waited_out_and_the_relay_goes_on(
    shop: Shop, broker: JetStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop_with_carts(shop, 3)
    positions = log_positions(shop, "Carts")
    recorder = shop.carts.recorder
    select = recorder.select_notifications
    failures = iter([True, True])

    def lost_twice(*args: Any, **kwargs: Any) -> Any:
        if next(failures, False):
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return select(*args, **kwargs)

    monkeypatch.setattr(recorder, "select_notifications", lost_twice)
    states: list[str] = []
    relay = EventRelay(
        shop.carts, broker, report=lambda state, error: states.append(state)
    )
    relay.start()
    try:
        deadline = time.monotonic() + 20
        while relay.position() < positions[-1]:
            assert time.monotonic() < deadline, (relay.position(), states)
            assert relay.error is None, relay.error
            time.sleep(0.05)
    finally:
        relay.stop()
        relay.join(10)

    assert relay.error is None
    assert "waiting" in states
    assert relayed_positions(broker, "Carts") == positions


def test_a_broker_restarted_after_its_id_window_does_not_stall_the_relay(
    shop: Shop, broker: JetStream, nats_server: PrivateNats
) -> None:
    # given a stream whose duplicate window has passed since its last message,
    # and a broker restarted since: it no longer knows that message's id
    shop_with_carts(shop, 2)
    broker.ensure_stream(
        stream_name("Carts"), [stream_subjects("Carts")], duplicate_window=0.5
    )
    EventRelay(shop.carts, broker).relay_once()
    time.sleep(1.0)
    nats_server.stop()
    nats_server.start()
    shop.open_cart("after-the-restart")

    # when a relay publishes what came since
    relay = EventRelay(shop.carts, broker)
    reached: list[int] = []
    worker = threading.Thread(target=lambda: reached.append(relay.relay_once()))
    worker.start()
    worker.join(20)
    relay.stopping.set()
    worker.join(10)

    # then every event is in the stream once, in order
    positions = log_positions(shop, "Carts")
    assert reached == [positions[-1]]
    assert relayed_positions(broker, "Carts") == positions


def test_a_stream_that_keeps_refusing_is_waited_out_and_reported_not_spun_on(
    shop: Shop, broker: JetStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a stream that refuses every message as not following its end
    shop_with_carts(shop, 2)
    attempts: list[int] = []

    def refused(messages: Any) -> Published:
        attempts.append(len(messages))
        return Published(
            0, 0, PublishRefusedError("wrong last sequence", wrong_last_message=True)
        )

    publish = broker.publish_in_order
    monkeypatch.setattr(broker, "publish_in_order", refused)
    states: list[tuple[str, str | None]] = []
    relay = EventRelay(
        shop.carts, broker, report=lambda state, error: states.append((state, error))
    )
    relay.start()
    try:
        # then it waits between tries, longer each time, and says why
        time.sleep(2.0)
        assert 2 <= len(attempts) <= 20, len(attempts)
        assert relay.is_alive
        assert relay.error is None
        assert ("waiting", "waiting for the broker: wrong last sequence") in states

        # and once the stream takes its messages, it goes on
        monkeypatch.setattr(broker, "publish_in_order", publish)
        head = log_positions(shop, "Carts")[-1]
        eventually(lambda: relay.position() == head, 20, "the relay to catch up")
    finally:
        relay.stop()
        relay.join(10)
    assert relay.error is None
    assert relayed_positions(broker, "Carts") == log_positions(shop, "Carts")
