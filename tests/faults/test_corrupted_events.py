"""A stored event that cannot be decoded (a topic that names no class, a state
that is not JSON or lacks the class's fields) is never skipped silently, on
SQLite and PostgreSQL: the process managers that follow its log halt before
it, naming the log and the position; read models park it as a dead letter and
go on; ``eventshop status`` names it instead of crashing; and the subscribers
hosted beside a halted one (in the shop's threads, or in one worker process)
keep running."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from application import Settings, Shop
from application.cli import main
from application.config import FaultPolicy
from application.subscribers.fault_handling import SubscriberHaltedError
from application.subscribers.hosting import SubscriberFailedError
from application.subscribers.leadership import HEARTBEAT_SECONDS
from application.subscribers.runner import SubscriberRunner
from application.subscribers.status import SubscriberStatus, subscriber_statuses
from domain.cart import Cart
from domain.errors import DeadLetterRetryFailedError
from domain.values import order_id_for_cart
from projections.store import SubscriberReport
from tests.projections.runner_testing import eventually, start_worker

TEA = "TEA-CORRUPT"


@dataclass(frozen=True)
class Corruption:
    """A stored event of the Carts log that cannot be decoded."""

    name: str
    topic: str
    state: Callable[[Application[uuid.UUID]], bytes]
    halts_checkout: bool
    """Whether the checkout process manager (it handles ``Cart.CheckedOut``
    only) must halt at it: a topic that names no class might be one it handles;
    a known topic it does not handle need not be decoded."""


def valid_json(service: Application[uuid.UUID]) -> bytes:
    return service.mapper.transcoder.encode({"timestamp": datetime.now(UTC)})


def wrong_fields(service: Application[uuid.UUID]) -> bytes:
    return service.mapper.transcoder.encode(
        {"timestamp": datetime.now(UTC), "colour": "red"}
    )


UNKNOWN_TOPIC = Corruption(
    "unknown topic", "domain.cart:Cart.CheckedOutLongAgo", valid_json, True
)
NOT_JSON = Corruption(
    "state not JSON", get_topic(Cart.CheckedOut), lambda _: b"not json", True
)
WRONG_FIELDS = Corruption(
    "state without the class's fields", get_topic(Cart.CheckedOut), wrong_fields, True
)
UNHANDLED_NOT_JSON = Corruption(
    "unhandled topic, state not JSON",
    get_topic(Cart.ItemAdded),
    lambda _: b"not json",
    False,
)
CORRUPTIONS = [UNKNOWN_TOPIC, NOT_JSON, WRONG_FIELDS, UNHANDLED_NOT_JSON]


def store_corrupt(shop: Shop, corruption: Corruption) -> int:
    """Appends the corrupt event to the Carts log, as a raw row would be (the
    store refuses to change a stored one); returns its position."""
    service = shop.carts
    service.recorder.insert_events(
        [
            StoredEvent(
                originator_id=uuid.uuid4(),
                originator_version=1,
                topic=corruption.topic,
                state=corruption.state(service),
            )
        ]
    )
    return service.recorder.max_notification_id() or 0


def check_out(shop: Shop, customer: str) -> uuid.UUID:
    cart_id = shop.open_cart(customer)
    shop.add_to_cart(cart_id, TEA, 1)
    shop.checkout(cart_id)
    return cart_id


def position_of(shop: Shop, name: str) -> int:
    (subscriber,) = [s for s in shop.subscribers.subscribers if s.name == name]
    return subscriber.position() or 0


def caught_up(shop: Shop, *names: str) -> bool:
    heads = shop.log_heads()
    return all(
        position_of(shop, name) >= heads[subscriber.follows]
        for subscriber in shop.subscribers.subscribers
        for name in names
        if subscriber.name == name
    )


def status_of(shop: Shop, name: str) -> SubscriberStatus:
    (status,) = [
        status
        for status in subscriber_statuses(
            shop.subscribers.subscribers, shop.services, shop.views.reports.all()
        )
        if status.name == name
    ]
    return status


def assert_parked(shop: Shop, position: int, *subscribers: str) -> None:
    letters = {letter.subscriber: letter for letter in shop.dead_letters.list()}
    assert sorted(letters) == sorted(subscribers)
    for letter in letters.values():
        assert (letter.service, letter.position) == ("Carts", position)
        assert f"Carts position {position}" in letter.error


@pytest.fixture
def threads_shop(settings: Settings) -> Iterator[Shop]:
    """An embedded shop whose subscribers run in threads of this process."""
    with Shop(settings=settings, subscribers="threads") as shop:
        shop.register_product(TEA, "Sencha", "6.20")
        shop.receive_stock(TEA, 10)
        yield shop


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=lambda c: c.name)
def test_a_corrupt_event_halts_the_process_managers_and_is_parked_by_read_models(
    threads_shop: Shop, corruption: Corruption, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = threads_shop
    # given a checkout handled, then a corrupt event in the Carts log
    before = check_out(shop, "before")
    shop.wait_until_processed(timeout=30)
    bad = store_corrupt(shop, corruption)

    # when more is written to every log
    after = check_out(shop, "after")
    shop.receive_stock(TEA, 5)

    # then the read models of the Carts log parked it and went on
    eventually(lambda: caught_up(shop, "carts", "audit_carts"), 30, "the carts views")
    assert_parked(shop, bad, "carts", "audit_carts")
    after_view = shop.queries.cart(after)
    assert after_view is not None
    assert after_view.status == "checked_out"
    # and the subscribers of the other logs kept running
    eventually(lambda: caught_up(shop, "stock"), 30, "the stock view")
    level = shop.queries.stock_level(TEA)
    assert level is not None
    assert level.on_hand == 15
    assert shop.get_order(order_id_for_cart(before)).status == "confirmed"

    (checkout,) = [r for r in shop.subscribers.runners if r.name == "checkout"]
    if not corruption.halts_checkout:
        # (a known topic it does not handle is no business of the checkout)
        shop.wait_until_processed(timeout=30)
        assert shop.get_order(order_id_for_cart(after)).status == "confirmed"
        return
    # and the checkout halted before it, naming the log and the position;
    # nothing after it was handled
    assert_halted_at(checkout, bad)
    assert position_of(shop, "checkout") < bad
    assert shop.queries.order(order_id_for_cart(after)) is None
    assert all(
        runner.is_alive for runner in shop.subscribers.runners if runner is not checkout
    )
    status = status_of(shop, "checkout")
    assert status.state == "halted"
    assert status.error_summary is not None
    assert f"Carts position {bad}" in status.error_summary

    # and `eventshop status` says so, and exits 1
    capsys.readouterr()
    assert main(["status", "--database-url", shop.settings.database_url()]) == 1
    out = capsys.readouterr().out
    assert f"Carts position {bad}" in " ".join(out.split())


def assert_halted_at(runner: SubscriberRunner, position: int) -> None:
    eventually(lambda: not runner.is_alive, 30, f"{runner.name} to halt")
    halt = runner.error
    assert isinstance(halt, SubscriberHaltedError), halt
    assert halt.position == position
    assert f"Carts position {position}" in str(halt)
    assert "cannot be decoded" in str(halt)


@pytest.mark.parametrize(
    "corruption", [UNKNOWN_TOPIC, NOT_JSON, WRONG_FIELDS], ids=lambda c: c.name
)
def test_status_names_an_undecodable_next_event_instead_of_crashing(
    shop: Shop, corruption: Corruption, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a corrupt event as the first of the Carts log, no subscriber run yet
    bad = store_corrupt(shop, corruption)

    # when the status is asked for
    statuses = {
        status.name: status
        for status in subscriber_statuses(
            shop.subscribers.subscribers, shop.services, shop.views.reports.all()
        )
    }

    # then every follower of the Carts log names it as its next event
    for name in ("checkout", "carts", "audit_carts"):
        problem = statuses[name].next_event_error
        assert problem is not None
        assert f"Carts position {bad}" in problem
    assert statuses["stock"].next_event_error is None

    # and `eventshop status` shows it, one line per subscriber, and exits 1
    capsys.readouterr()
    assert main(["status", "--database-url", shop.settings.database_url()]) == 1
    captured = capsys.readouterr()
    named = [line for line in captured.out.splitlines() if "cannot be decoded" in line]
    assert [line.split(":")[0] for line in named] == [
        "checkout",
        "carts",
        "audit_carts",
    ]
    assert "Traceback" not in captured.out + captured.err


def latest_report(shop: Shop, name: str) -> SubscriberReport | None:
    reports = shop.views.reports.all().get(name)
    return reports[0] if reports else None


def reported_at(shop: Shop, name: str) -> datetime:
    report = latest_report(shop, name)
    assert report is not None
    return report.heartbeat_at


def state_of(shop: Shop, name: str) -> str | None:
    report = latest_report(shop, name)
    return None if report is None else report.state


def test_a_halted_subscriber_leaves_the_others_of_its_worker_process_running(
    shop: Shop, settings: Settings
) -> None:
    # given one worker process hosting the checkout, the carts view and stock
    shop.register_product(TEA, "Sencha", "6.20")
    worker = start_worker(settings, "checkout", "carts", "stock")
    try:
        # when a corrupt checkout is stored, then more events on both logs
        bad = store_corrupt(shop, NOT_JSON)
        cart_id = shop.open_cart("after")
        shop.add_to_cart(cart_id, TEA, 1)
        shop.receive_stock(TEA, 7)

        # then the checkout halts at it, naming the log and the position
        eventually(lambda: state_of(shop, "checkout") == "halted", 60, "the halt")
        halted_at = reported_at(shop, "checkout")
        summary = status_of(shop, "checkout").error_summary
        assert summary is not None
        assert f"Carts position {bad}" in summary
        # and the others are still running well after it (they heartbeat
        # every HEARTBEAT_SECONDS; a worker that stopped with the checkout
        # would have stopped them within a second)
        eventually(
            lambda: (
                reported_at(shop, "stock") - halted_at
                > timedelta(seconds=HEARTBEAT_SECONDS)
            ),
            60,
            "a heartbeat of stock after the halt",
        )
        assert state_of(shop, "stock") == "running"
        # and they handle what comes next
        shop.add_to_cart(cart_id, TEA, 1)
        shop.receive_stock(TEA, 3)
        eventually(lambda: caught_up(shop, "carts", "stock"), 60, "the others")
        assert_parked(shop, bad, "carts")
        level = shop.queries.stock_level(TEA)
        assert level is not None
        assert level.on_hand == 10
        cart = shop.queries.cart(cart_id)
        assert cart is not None
        assert cart.item_count == 2
        assert worker.poll() is None
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=60)

    # and when stopped, the worker exits 1, saying which one halted
    assert worker.returncode == 1, output.decode()
    assert b"worker checkout stopped" in output


def test_a_halted_subscriber_leaves_the_others_of_the_embedded_helper_running(
    settings: Settings,
) -> None:
    # given an embedded shop (its subscribers in its helper process)
    with Shop(settings=settings) as shop:
        shop.register_product(TEA, "Sencha", "6.20")
        # when an event with an unknown topic is stored, then more events
        bad = store_corrupt(shop, UNKNOWN_TOPIC)
        cart_id = shop.open_cart("after")
        shop.add_to_cart(cart_id, TEA, 2)
        shop.receive_stock(TEA, 4)

        # then waiting reports the checkout's halt, naming log and position
        with pytest.raises(SubscriberFailedError, match="checkout") as failed:
            shop.wait_until_processed(timeout=60)
        assert f"Carts position {bad}" in str(failed.value)
        # and the others handled everything
        eventually(
            lambda: caught_up(shop, "carts", "audit_carts", "stock", "audit_inventory"),
            60,
            "the other subscribers",
        )
        assert_parked(shop, bad, "carts", "audit_carts")
        cart = shop.queries.cart(cart_id)
        assert cart is not None
        assert cart.item_count == 2


def test_a_process_manager_halted_at_a_corrupt_event_moves_past_it_parking_it(
    settings: Settings,
) -> None:
    # given a checkout halted at an event whose topic names no class
    with Shop(settings=settings, subscribers="threads") as shop:
        shop.register_product(TEA, "Sencha", "6.20")
        shop.receive_stock(TEA, 10)
        bad = store_corrupt(shop, UNKNOWN_TOPIC)
        after = check_out(shop, "after")
        (checkout,) = [r for r in shop.subscribers.runners if r.name == "checkout"]
        assert_halted_at(checkout, bad)

    # when it is restarted once with the park policy
    park = FaultPolicy(attempts=1, on_failure="park")
    with Shop(
        settings=settings, subscribers="threads", fault_policies={"checkout": park}
    ) as shop:
        shop.wait_until_processed(timeout=30)

        # then it parked the event, and the checkout after it got its order
        letters = shop.dead_letters.list(subscriber="checkout")
        assert [(letter.service, letter.position) for letter in letters] == [
            ("Carts", bad)
        ]
        assert shop.get_order(order_id_for_cart(after)).status == "confirmed"


def test_retrying_a_parked_corrupt_event_fails_with_a_typed_error_and_keeps_it(
    threads_shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a corrupt event the carts view parked
    shop = threads_shop
    bad = store_corrupt(shop, NOT_JSON)
    eventually(lambda: caught_up(shop, "carts"), 30, "the carts view")
    (letter,) = shop.dead_letters.list(subscriber="carts")
    assert letter.position == bad

    # when it is retried, then that fails, and it stays parked
    with pytest.raises(DeadLetterRetryFailedError, match="MapperDeserialisation"):
        shop.dead_letters.retry(letter.dead_letter_id)
    assert shop.dead_letters.get(letter.dead_letter_id).status == "parked"
    # and on the command line: one line on stderr, exit 2
    capsys.readouterr()
    storage = ["--database-url", shop.settings.database_url()]
    retry = ["dead-letters", "retry", str(letter.dead_letter_id), *storage]
    assert main(retry) == 2
    err = capsys.readouterr().err
    assert err.startswith("eventshop: error: retry of dead letter")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("corruption", [UNKNOWN_TOPIC, NOT_JSON], ids=lambda c: c.name)
def test_a_rebuild_passes_over_a_corrupt_event_as_the_live_view_parked_it(
    threads_shop: Shop, corruption: Corruption, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a corrupt event between two checkouts, parked by the carts views
    shop = threads_shop
    check_out(shop, "before")
    bad = store_corrupt(shop, corruption)
    check_out(shop, "after")
    eventually(lambda: caught_up(shop, "carts", "audit_carts"), 30, "the carts views")

    # when the carts view is rebuilt from the log
    (report,) = shop.rebuild("carts", mode="verify")

    # then the rebuild got past it, said so naming log and position, and
    # agrees with the live view (which parked the same event)
    (problem,) = report.undecodable
    assert f"the event at Carts position {bad} cannot be decoded" in problem
    assert report.agrees
    # and on the command line it is one line of the report, and exit 0
    capsys.readouterr()
    storage = ["--database-url", shop.settings.database_url()]
    assert main(["rebuild", "carts", "--verify", *storage]) == 0
    out = capsys.readouterr().out
    assert f"Carts position {bad}" in " ".join(out.split())
