"""Subscribers fed by the broker: they read a service's JetStream stream
through a durable consumer of their own, record their effects and position in
their own database, then acknowledge. Redeliveries, messages published twice
and consumers restarted from a stored position never take an event twice or
skip one. Against a NATS server of the test's own."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import Notification

from application import Shop
from application.cli import main
from application.config import Settings
from application.databases import ConfigurationError
from application.relay.broker_feed import BrokerLog, MalformedMessageError
from application.relay.jetstream import (
    EXPECTED_LAST_SEQUENCE,
    DeliveredMessage,
    JetStream,
    Outgoing,
)
from application.relay.messages import RelayedEvent, stream_name
from application.relay.relay import EventRelay
from tests.projections.runner_testing import eventually
from tests.support.private_nats import PrivateNats, private_nats

TEA = "TEA-1"


def carts_opened(shop: Shop, count: int) -> None:
    for number in range(count):
        shop.open_cart(f"customer-{number}")


def feed_of_carts(shop: Shop, url: str, subscriber: str = "probe") -> BrokerLog:
    return BrokerLog(
        "Carts",
        subscriber,
        JetStream(url, timeout=2.0),
        shop.carts.mapper.to_domain_event,
    )


def positions(batch: Any) -> list[int]:
    return [entry.id for entry in batch]


def log_positions(shop: Shop) -> list[int]:
    return [n.id for n in shop.carts.recorder.select_notifications(0, 10_000)]


# -- the feed against a real stream -----------------------------------------------


def test_a_feed_delivers_the_log_in_order_after_a_position(
    shop: Shop, broker: JetStream, nats_server: PrivateNats
) -> None:
    carts_opened(shop, 6)
    EventRelay(shop.carts, broker).relay_once()
    stored = log_positions(shop)
    feed = feed_of_carts(shop, nats_server.url)
    try:
        with feed.follow() as follower:
            first = follower.batch_after(None, limit=4, timeout=2)
            rest = follower.batch_after(first[-1].id, limit=100, timeout=2)
        with feed.follow() as follower:
            from_the_middle = follower.batch_after(stored[2], limit=100, timeout=2)
    finally:
        feed.close()

    assert positions(first) + positions(rest) == stored
    assert positions(from_the_middle) == stored[3:]
    # each event decodes as the service stored it
    assert type(first[0].event()).__qualname__ == "Cart.Opened"


def test_a_feed_restarted_before_acknowledging_takes_the_same_events_again(
    shop: Shop, broker: JetStream, nats_server: PrivateNats
) -> None:
    # given a feed that took events and died before its subscriber recorded them
    carts_opened(shop, 5)
    EventRelay(shop.carts, broker).relay_once()
    stored = log_positions(shop)
    crashed = feed_of_carts(shop, nats_server.url)
    with crashed.follow() as follower:
        assert positions(follower.batch_after(0, limit=3, timeout=2)) == stored[:3]
    crashed.close()

    # when its runner starts again from the stored position (nothing recorded)
    feed = feed_of_carts(shop, nats_server.url)
    try:
        with feed.follow() as follower:
            again = follower.batch_after(0, limit=100, timeout=2)
            follower.handled_up_to(again[-1].id)
    finally:
        feed.close()

    # then it takes every event, from the first, once; and acknowledges them
    assert positions(again) == stored
    eventually(
        partial(acknowledged_to_the_end, broker, feed),
        10,
        "the acknowledgement to reach the consumer",
    )


def test_an_event_published_again_beyond_the_id_window_is_taken_once(
    shop: Shop, broker: JetStream, nats_server: PrivateNats
) -> None:
    # given a stream in which an event was published a second time, under a
    # new message id (as a republish after the broker's window would be)
    carts_opened(shop, 3)
    EventRelay(shop.carts, broker).relay_once()
    stream = stream_name("Carts")
    copied = broker.message_at(stream, 2)
    headers = {**copied.headers, "Nats-Msg-Id": f"copy-{uuid4()}"}
    headers.pop(EXPECTED_LAST_SEQUENCE, None)
    published = broker.publish_in_order(
        [Outgoing(copied.subject, copied.payload, headers)]
    )
    assert published.acknowledged == 1
    assert broker.last_sequence(stream) == len(log_positions(shop)) + 1

    # when a feed reads it all
    feed = feed_of_carts(shop, nats_server.url)
    try:
        with feed.follow() as follower:
            taken: list[int] = []
            while batch := follower.batch_after(
                taken[-1] if taken else 0, limit=2, timeout=0.2
            ):
                taken += positions(batch)
    finally:
        feed.close()

    # then the copy was dropped by the position check, and nothing skipped
    assert taken == log_positions(shop)
    assert feed.redeliveries == 1


def test_a_feed_waits_for_a_stream_its_relay_has_not_made_yet(
    shop: Shop, nats_server: PrivateNats
) -> None:
    feed = feed_of_carts(shop, nats_server.url)
    try:
        with feed.follow() as follower:
            assert follower.batch_after(0, limit=10, timeout=0.05) == ()
    finally:
        feed.close()


# -- what the feed makes of what the consumer delivers -------------------------------


class ScriptedBroker:
    """A broker whose consumer delivers what the test says, in that order."""

    def __init__(self, deliveries: list[list[DeliveredMessage]]) -> None:
        self.deliveries = deliveries
        self.acknowledged: list[int] = []
        self.started_at: list[int] = []

    def stream_state(self, stream: str) -> Any:
        from application.relay.jetstream import StreamState

        return StreamState(first_sequence=1, last_sequence=100, messages=100)

    def message_at(self, stream: str, sequence: int) -> Any:
        from application.relay.jetstream import StoredMessage

        # positions are ten times the sequence numbers
        return StoredMessage(
            sequence, "s", {"Eventshop-Position": str(sequence * 10)}, b""
        )

    def start_consumer(self, stream: str, consumer: str, start_sequence: int) -> None:
        self.started_at.append(start_sequence)

    def fetch(self, *args: Any) -> list[DeliveredMessage]:
        return self.deliveries.pop(0) if self.deliveries else []

    def ack(self, message: DeliveredMessage) -> None:
        self.acknowledged.append(message.sequence)

    def close(self) -> None:
        pass


def delivered(sequence: int, position: int | None = None) -> DeliveredMessage:
    position = sequence * 10 if position is None else position
    notification = Notification(
        id=position,
        originator_id=uuid4(),
        originator_version=1,
        topic="domain.cart:Cart.Opened",
        state=b"{}",
    )
    relayed = RelayedEvent("Carts", notification, None, None)
    return DeliveredMessage(
        sequence,
        relayed.headers,
        relayed.payload(),
        delivery=None,  # type: ignore[arg-type]
    )


def scripted_feed(
    deliveries: list[list[DeliveredMessage]],
) -> tuple[BrokerLog, ScriptedBroker]:
    broker = ScriptedBroker(deliveries)
    feed = BrokerLog("Carts", "probe", broker, lambda n: n)  # type: ignore[arg-type]
    return feed, broker


def test_a_message_delivered_again_is_dropped() -> None:
    feed, _ = scripted_feed(
        [[delivered(1), delivered(2)], [delivered(1), delivered(3)]]
    )
    with feed.follow() as follower:
        first = follower.batch_after(0, limit=10, timeout=0)
        second = follower.batch_after(20, limit=10, timeout=0)
    assert (positions(first), positions(second)) == ([10, 20], [30])
    assert feed.redeliveries == 1


def test_a_hole_in_what_is_delivered_starts_the_consumer_again_where_it_got() -> None:
    # the consumer delivers 1, 2, then 4: 3 is missing
    feed, broker = scripted_feed(
        [[delivered(1), delivered(2), delivered(4)], [delivered(3)]]
    )
    with feed.follow() as follower:
        first = follower.batch_after(0, limit=10, timeout=0)
        second = follower.batch_after(first[-1].id, limit=10, timeout=0)
    assert positions(first) == [10, 20]
    # started at the first message, then again at the one after position 20
    assert broker.started_at == [1, 3]
    assert positions(second) == [30]


def test_a_runner_resyncing_to_another_position_starts_the_consumer_there() -> None:
    feed, broker = scripted_feed([[delivered(1), delivered(2)], [delivered(2)]])
    with feed.follow() as follower:
        follower.batch_after(0, limit=10, timeout=0)
        # the runner recorded only up to 10 (say, it gave up on the event at 20)
        again = follower.batch_after(10, limit=10, timeout=0)
    assert broker.started_at == [1, 2]
    assert positions(again) == [20]


def test_acknowledging_takes_the_last_message_up_to_the_recorded_position() -> None:
    feed, broker = scripted_feed([[delivered(1), delivered(2), delivered(3)]])
    with feed.follow() as follower:
        follower.batch_after(0, limit=10, timeout=0)
        follower.handled_up_to(20)
        follower.handled_up_to(20)
        follower.handled_up_to(30)
    # one acknowledgement per step, each covering those before it
    assert broker.acknowledged == [2, 3]


def test_a_message_that_is_not_a_relayed_event_is_a_typed_error() -> None:
    bad = DeliveredMessage(1, {}, b"not json", delivery=None)  # type: ignore[arg-type]
    feed, _ = scripted_feed([[bad]])
    with feed.follow() as follower, pytest.raises(MalformedMessageError):
        follower.batch_after(0, limit=10, timeout=0)


# -- a shop whose subscribers the broker feeds -----------------------------------------


def test_a_broker_fed_shop_settles_and_its_views_equal_a_rebuild(
    tmp_path: Path, nats_server: PrivateNats, broker: JetStream
) -> None:
    with Shop(
        data_dir=tmp_path,
        subscribers="threads",
        nats_url=nats_server.url,
        broker_fed=["all"],
    ) as shop:
        shop.register_product(TEA, "Tea", "3.50")
        shop.receive_stock(TEA, 3)
        orders = []
        for number in range(4):
            cart = shop.open_cart(f"c{number}")
            shop.add_to_cart(cart, TEA, 1)
            orders.append(shop.checkout(cart))
        shop.wait_until_processed(timeout=60)

        statuses = [shop.get_order(order).status for order in orders]
        assert sorted(statuses) == ["confirmed"] * 3 + ["rejected"]
        assert shop.get_stock(TEA).reserved == 3
        assert all(
            type(runner.log).__name__ == "BrokerLog"
            for runner in shop.subscribers.runners
        )
        reports = shop.rebuild("all", mode="verify")
        assert [report.projection for report in reports if not report.agrees] == []
        # every consumer acknowledged its stream to the end
        for runner in shop.subscribers.runners:
            feed = runner.log
            assert isinstance(feed, BrokerLog)
            eventually(
                partial(acknowledged_to_the_end, broker, feed),
                20,
                f"{feed.consumer} to acknowledge {feed.stream}",
            )


def acknowledged_to_the_end(broker: JetStream, feed: BrokerLog) -> bool:
    state = broker.consumer_state(feed.stream, feed.consumer)
    last = broker.last_sequence(feed.stream)
    return state is not None and state.acknowledged == last


def test_a_broker_that_is_down_is_waited_out_and_the_shop_catches_up(
    tmp_path: Path,
) -> None:
    with (
        private_nats(started=False) as server,
        Shop(
            data_dir=tmp_path,
            subscribers="threads",
            nats_url=server.url,
            broker_fed=["carts"],
        ) as shop,
    ):
        # commands go on while the broker is away
        cart = shop.open_cart("ann")
        [runner] = [r for r in shop.subscribers.runners if r.name == "carts"]
        eventually(
            lambda: (runner.waiting_for or "").startswith("waiting for the broker"),
            20,
            "the carts view to say it waits for the broker",
        )
        assert runner.error is None
        assert shop.queries.cart(cart) is None

        server.start()
        shop.wait_until_processed(timeout=60)
        view = shop.queries.cart(cart)
        assert view is not None
        assert runner.waiting_for is None


# -- settings and the command line ----------------------------------------------------


def test_broker_fed_subscribers_need_the_brokers_url() -> None:
    with pytest.raises(ConfigurationError, match="need its URL"):
        Settings.from_url(data_dir="x", broker_fed=["carts"])
    with pytest.raises(ConfigurationError, match="nats:// or tls://"):
        Settings.from_url(data_dir="x", nats_url="http://x", broker_fed=["carts"])


def test_feeds_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTSHOP_NATS_URL", "nats://127.0.0.1:4222")
    monkeypatch.setenv("EVENTSHOP_BROKER_FED", "carts, checkout")
    settings = Settings.from_url(data_dir="x")
    assert (settings.feed_of("carts"), settings.feed_of("checkout")) == (
        "broker",
        "broker",
    )
    assert settings.feed_of("orders") == "direct"
    child = settings.child_environment()
    assert child["EVENTSHOP_BROKER_FED"] == "carts,checkout"
    assert child["EVENTSHOP_NATS_URL"] == "nats://127.0.0.1:4222"


def test_topology_says_which_subscribers_the_broker_feeds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--nats", "nats://127.0.0.1:1", "--broker-fed", "carts"]
    assert main(["topology", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    [carts] = [line for line in lines if line.startswith("│ carts ")]
    [orders] = [line for line in lines if line.startswith("│ orders ")]
    assert "broker: stream EVENTSHOP_CARTS" in carts
    assert "direct" in orders

    assert main(["topology", "--mermaid", *args]) == 0
    mermaid = capsys.readouterr().out
    assert "-.->|JetStream| sub_carts" in mermaid
    assert "--> sub_orders" in mermaid


def test_an_unknown_broker_fed_subscriber_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["topology", "--nats", "nats://127.0.0.1:1", "--broker-fed", "nope"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert "no subscriber named nope" in err.strip().splitlines()[-1]


def test_status_shows_the_relays_and_the_consumers_with_their_lag(
    tmp_path: Path,
    nats_server: PrivateNats,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with Shop(
        data_dir=tmp_path,
        subscribers="threads",
        nats_url=nats_server.url,
        broker_fed=["carts"],
    ) as shop:
        carts_opened(shop, 3)
        shop.wait_until_processed(timeout=60)
        head = log_positions(shop)[-1]
        [runner] = [r for r in shop.subscribers.runners if r.name == "carts"]
        feed = runner.log
        assert isinstance(feed, BrokerLog)
        check = JetStream(nats_server.url, timeout=2.0)
        try:
            eventually(
                partial(acknowledged_to_the_end, check, feed),
                20,
                "the carts view to acknowledge the stream",
            )
        finally:
            check.close()

    args = ["--data-dir", str(tmp_path), "--nats", nats_server.url]
    code = main(["status", *args, "--broker-fed", "carts"])
    out = capsys.readouterr().out
    assert code == 0
    [relay] = [line for line in out.splitlines() if line.startswith("│ Carts ")]
    # published, head, lag, the stream's last sequence
    assert cells(relay)[2:7] == [str(head), str(head), "0", str(head), ""]
    [orders] = [line for line in out.splitlines() if line.startswith("│ Orders ")]
    assert cells(orders)[5:7] == ["-", "no stream yet (its relay makes it)"]
    [fed] = [
        line
        for line in out.splitlines()
        if line.startswith("│ carts ") and "EVENTSHOP_CARTS" in line
    ]
    # the stream's last sequence, acknowledged, lag
    assert cells(fed)[2:5] == [str(head), str(head), "0"]

    # and so it does for a consumer made anew after the stored position, as a
    # runner's start makes it, before it acknowledged anything
    check = JetStream(nats_server.url, timeout=2.0)
    try:
        check.start_consumer(feed.stream, feed.consumer, head + 1)
    finally:
        check.close()
    assert main(["status", *args, "--broker-fed", "carts"]) == 0
    [fed] = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("│ carts ") and "EVENTSHOP_CARTS" in line
    ]
    assert cells(fed)[2:5] == [str(head), str(head), "0"]


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.split("│")[1:-1]]
