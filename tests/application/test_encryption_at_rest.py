"""Encryption at rest, on SQLite and PostgreSQL: with a key, every stored event
and snapshot is compressed and encrypted (no plaintext in the raw rows), the
shop reads it all back, a wrong or missing key is a typed error at start, keys
rotate, and no key ever shows in a repr, an error or a command's output."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from eventsourcing.utils import Environment
from psycopg import sql

from application import Settings, Shop
from application.audit.chain_verification import verify_chains
from application.cli import main
from application.persistence.encryption import (
    CIPHER_KEY,
    CIPHER_KEY_FILE_VARIABLE,
    CIPHER_KEY_VARIABLE,
    CIPHER_OLD_KEYS,
    CIPHER_OLD_KEYS_VARIABLE,
    MARKER,
    CipherKeyError,
    CipherKeys,
    RotatingCipher,
    create_key,
    key_id,
)
from application.relay.jetstream import JetStream
from application.relay.messages import RelayedEvent, stream_name
from application.services import Carts, Inventory
from tests.application.shop_testing import TEA, TEA_NAME, World, build_world
from tests.application.test_service_snapshots import given_a_busy_item
from tests.support.private_nats import private_nats

KEY_A = create_key()
KEY_B = create_key()
PLAINTEXTS = [TEA.encode(), TEA_NAME.encode(), b"customer-1", b"customer-3"]
ROOT = Path(__file__).resolve().parents[2]


def with_keys(settings: Settings, current: str | None, *old: str) -> Settings:
    keys = None if current is None else CipherKeys(current, old)
    return replace(settings, cipher_keys=keys)


def stored_states(settings: Settings) -> dict[str, list[bytes]]:
    """Every stored event and snapshot state, per table, read from the
    database itself (not through the library)."""
    if settings.engine == "sqlite":
        states: dict[str, list[bytes]] = {}
        for path in sorted(settings.data_dir.glob("*.sqlite3")):
            with closing(sqlite3.connect(path)) as conn:
                tables = [
                    name
                    for (name,) in conn.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table' "
                        "AND name IN ('stored_events', 'stored_snapshots')"
                    )
                ]
                for table in tables:
                    states[f"{path.stem}.{table}"] = [
                        bytes(state)
                        for (state,) in conn.execute(f"SELECT state FROM {table}")
                    ]
        return states
    assert settings.postgres is not None
    schema = settings.postgres.schema
    with psycopg.connect(settings.postgres.conninfo()) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema = %s AND column_name = 'state' "
                "AND (table_name LIKE %s OR table_name LIKE %s)",
                (schema, "%\\_events", "%\\_snapshots"),
            )
        ]
        return {
            table: [
                bytes(state)
                for (state,) in conn.execute(
                    sql.SQL("SELECT state FROM {}").format(
                        sql.Identifier(schema, table)
                    )
                )
            ]
            for table in tables
        }


def carts_table(settings: Settings) -> str:
    """The name :func:`stored_states` gives the Carts event table."""
    return "carts.stored_events" if settings.engine == "sqlite" else "carts_events"


def event_tables(states: dict[str, list[bytes]]) -> dict[str, list[bytes]]:
    return {table: rows for table, rows in states.items() if "snapshots" not in table}


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    """Something of everything, stored with key A."""
    with Shop(settings=with_keys(settings, KEY_A), subscribers="workers") as shop:
        yield build_world(shop)


def test_with_a_key_no_event_table_holds_plaintext_and_the_shop_reads_all(
    settings: Settings, world: World
) -> None:
    # given a shop that stored carts, an order and stock with key A (world)
    # when the raw rows are read
    tables = event_tables(stored_states(settings))

    # then every service's table has rows, each encrypted, none with plaintext
    assert len(tables) == 3
    for table, states in tables.items():
        assert states, table
        for state in states:
            assert state.startswith(MARKER + key_id(KEY_A)), table
            assert not any(text in state for text in PLAINTEXTS), table
    # and the shop reads everything back
    shop = world.shop
    assert shop.get_cart(world.cart_id).lines[0].sku == TEA
    assert shop.get_order(world.order_id).customer_id == "customer-3"
    assert shop.get_stock(TEA).on_hand == 50


def test_the_state_is_compressed_before_it_is_encrypted(
    settings: Settings, world: World
) -> None:
    # given the raw rows written with key A (world)
    state = stored_states(settings)[carts_table(settings)][0]
    cipher = RotatingCipher(Environment(env={CIPHER_KEY: KEY_A, CIPHER_OLD_KEYS: ""}))

    # when one is decrypted
    decrypted = cipher.decrypt(state)

    # then what was encrypted is zlib data that holds the JSON of the event
    assert zlib.decompress(decrypted).startswith(b"{")


def test_snapshots_are_encrypted_too(settings: Settings) -> None:
    # given an inventory item with more events than the snapshot interval
    inventory = Inventory(with_keys(settings, KEY_A))
    try:
        item_id = given_a_busy_item(inventory, 61)

        # when the snapshot rows are read raw
        snapshots = {
            table: rows
            for table, rows in stored_states(settings).items()
            if "snapshots" in table
        }

        # then there is one, encrypted, and loading from it gives the item back
        (rows,) = snapshots.values()
        assert len(rows) == 1
        assert rows[0].startswith(MARKER)
        assert TEA.encode() not in rows[0]
        assert inventory.snapshots is not None
        assert [s.originator_version for s in inventory.snapshots.get(item_id)] == [50]
        assert inventory.get_stock(TEA).version == 61
    finally:
        inventory.close()


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        pytest.param((KEY_B,), "neither the current cipher key", id="wrong key"),
        pytest.param((None,), "no cipher key is configured", id="no key"),
    ],
)
def test_starting_over_encrypted_events_without_their_key_is_refused(
    settings: Settings, world: World, keys: tuple[str | None], says: str
) -> None:
    # given events stored with key A (world)
    world.shop.close()

    # when a shop starts with another key, or none
    with pytest.raises(CipherKeyError) as refused:
        Shop(settings=with_keys(settings, *keys), subscribers="workers")

    # then it is refused, in one line, naming neither key
    message = str(refused.value)
    assert says in message
    assert "\n" not in message
    assert KEY_A not in message
    assert KEY_B not in message


def test_starting_with_a_key_over_plain_events_is_refused(settings: Settings) -> None:
    # given a shop that stored events without encryption
    with Shop(settings=settings, subscribers="workers") as shop:
        build_world(shop)

    # when it starts again with a key
    with pytest.raises(CipherKeyError) as refused:
        Shop(settings=with_keys(settings, KEY_A), subscribers="workers")

    # then it is refused
    assert "stored plain" in str(refused.value)
    assert KEY_A not in str(refused.value)


def test_the_cli_refuses_a_wrong_key_in_one_line_with_status_2(
    settings: Settings,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given events stored with key A (world)
    world.shop.close()
    monkeypatch.setenv(CIPHER_KEY_VARIABLE, KEY_B)

    # when a command runs with key B
    status = main(["status", *storage_arguments(settings)])

    # then it says so in one line and exits 2
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("eventshop: error: ")
    assert "cannot be read" in err
    assert err.count("\n") == 1
    assert KEY_B not in err


def test_rotation_reads_old_events_with_the_old_key_and_writes_with_the_new(
    settings: Settings, world: World
) -> None:
    # given events stored with key A (world)
    world.shop.close()
    before = {table: len(rows) for table, rows in stored_states(settings).items()}

    # when the shop rotates to key B, keeping A for reading, and writes
    with Shop(
        settings=with_keys(settings, KEY_B, KEY_A), subscribers="workers"
    ) as shop:
        # then the old events still read
        assert shop.get_cart(world.cart_id).lines[0].quantity == 2
        shop.add_to_cart(world.cart_id, TEA, 1)
        assert shop.get_cart(world.cart_id).lines[0].quantity == 3

    # and the new events are written with B, the old ones left as they were
    carts = carts_table(settings)
    states = stored_states(settings)[carts]
    old, new = states[: before[carts]], states[before[carts] :]
    assert new
    assert all(state.startswith(MARKER + key_id(KEY_A)) for state in old)
    assert all(state.startswith(MARKER + key_id(KEY_B)) for state in new)

    # and dropping A afterwards is refused at start
    with pytest.raises(CipherKeyError) as refused:
        Shop(settings=with_keys(settings, KEY_B), subscribers="workers")
    assert "old key dropped" in str(refused.value)


def test_dropping_a_key_that_encrypted_events_in_the_middle_is_refused(
    settings: Settings,
) -> None:
    # given carts written with key A, then B, then C, each rotation keeping
    # the keys before it
    key_c = create_key()
    for keys in ([KEY_A], [KEY_B, KEY_A], [key_c, KEY_B, KEY_A]):
        carts = Carts(with_keys(settings, *keys))
        try:
            for number in range(5):
                carts.open_cart(f"customer-{number}")
        finally:
            carts.close()

    # when Carts starts with C and A but without B
    with pytest.raises(CipherKeyError) as refused:
        Carts(with_keys(settings, key_c, KEY_A))

    # then it is refused, at an event written with B
    assert "old key dropped" in str(refused.value)
    position = int(str(refused.value).split("position ")[1].split()[0])
    assert 6 <= position <= 10


def test_a_process_with_the_new_key_among_its_old_keys_reads_what_it_writes(
    settings: Settings, world: World
) -> None:
    # given the first round of a rolling rotation: still writing with A, B
    # already kept for reading; one process already in the second round
    world.shop.close()
    with Shop(
        settings=with_keys(settings, KEY_B, KEY_A), subscribers="workers"
    ) as rotated:
        # when the rotated process writes with B
        rotated.add_to_cart(world.cart_id, TEA, 1)

    # then a process of the first round reads it
    with Shop(
        settings=with_keys(settings, KEY_A, KEY_B), subscribers="workers"
    ) as first_round:
        assert first_round.get_cart(world.cart_id).lines[0].quantity == 3


def test_a_stray_environment_variable_cannot_switch_the_cipher_on(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the library's own variables in the environment, prefixed or not
    monkeypatch.setenv("CIPHER_KEY", KEY_A)
    monkeypatch.setenv("CARTS_CIPHER_KEY", KEY_A)
    monkeypatch.setenv("CARTS_CIPHER_TOPIC", "eventsourcing.cryptography:AESCipher")
    monkeypatch.setenv("COMPRESSOR_TOPIC", "eventsourcing.compressor:ZlibCompressor")

    # when a shop without a key writes
    with Shop(settings=settings, subscribers="workers") as shop:
        shop.open_cart("customer-1")

    # then what it stored is plain
    (carts,) = [
        rows for table, rows in stored_states(settings).items() if "cart" in table
    ]
    assert carts
    assert all(b"customer-1" in state for state in carts)


def test_the_hash_chains_verify_over_encrypted_events(
    settings: Settings, world: World
) -> None:
    # given events stored with key A (world)
    world.shop.close()

    # when the logs are chained and verified
    verdicts = verify_chains(with_keys(settings, KEY_A))

    # then every chain is intact
    assert {name: verdict.kind for name, verdict in verdicts.items()} == {
        "Carts": "intact",
        "Orders": "intact",
        "Inventory": "intact",
    }


def test_a_decoding_stand_in_decodes_encrypted_events_as_the_service_does(
    settings: Settings, world: World
) -> None:
    # given an encrypted event as a broker-fed subscriber receives it (the
    # relay publishes the stored bytes as they are)
    keyed = with_keys(settings, KEY_A)
    (stored,) = world.shop.carts.recorder.select_notifications(1, 1)
    assert stored.state.startswith(MARKER)

    # when the stand-in that only decodes decodes it
    stand_in = Carts(keyed, decoding_only=True)
    try:
        event = stand_in.mapper.to_domain_event(stored)
    finally:
        stand_in.close()

    # then it is the event the service stored
    assert event.originator_id == stored.originator_id


def test_the_broker_carries_ciphertext_and_its_subscribers_decode_it(
    tmp_path: Path,
) -> None:
    # given a shop whose subscribers are all fed by the broker, with a key
    with private_nats() as nats_server:
        settings = Settings.from_url(
            data_dir=tmp_path / "data",
            nats_url=nats_server.url,
            broker_fed=["all"],
            cipher_keys=CipherKeys(KEY_A),
        )
        broker = JetStream(nats_server.url, timeout=2.0)
        try:
            with Shop(settings=settings, subscribers="threads") as shop:
                # when a customer checks out
                shop.register_product(TEA, TEA_NAME, "6.20")
                shop.receive_stock(TEA, 5)
                cart_id = shop.open_cart("customer-1")
                shop.add_to_cart(cart_id, TEA, 2)
                order_id = shop.checkout(cart_id)
                shop.wait_until_processed(timeout=60)

                # then the saga, fed by the broker, settled
                assert shop.get_order(order_id).status == "confirmed"
                assert shop.get_stock(TEA).reserved == 2
            # and the broker holds the state as stored: ciphertext
            last = broker.last_message(stream_name("Carts"))
            assert last is not None
            relayed = RelayedEvent.from_payload(last.payload)
            assert relayed.notification.state.startswith(MARKER)
            assert not any(text in last.payload for text in PLAINTEXTS)
        finally:
            broker.close()


# -- the keys themselves -------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        pytest.param({CIPHER_KEY_VARIABLE: "not base64!"}, "not base64", id="text"),
        pytest.param(
            {CIPHER_KEY_VARIABLE: "c2hvcnQga2V5"}, "9 bytes long", id="too short"
        ),
        pytest.param(
            {CIPHER_KEY_VARIABLE: KEY_A, CIPHER_OLD_KEYS_VARIABLE: "c2hvcnQga2V5"},
            "old cipher key number 1",
            id="bad old key",
        ),
        pytest.param({CIPHER_OLD_KEYS_VARIABLE: KEY_A}, "without", id="old keys alone"),
        pytest.param(
            {CIPHER_KEY_VARIABLE: KEY_A, CIPHER_KEY_FILE_VARIABLE: "/x"},
            "not both",
            id="key and file",
        ),
        pytest.param(
            {CIPHER_OLD_KEYS_VARIABLE: KEY_A, CIPHER_KEY_FILE_VARIABLE: "/x"},
            "not both",
            id="old keys and file",
        ),
        pytest.param(
            {CIPHER_KEY_FILE_VARIABLE: "/no/such/file"},
            "cannot read",
            id="missing file",
        ),
    ],
)
def test_a_malformed_key_is_a_typed_error_that_does_not_repeat_it(
    environ: dict[str, str], says: str
) -> None:
    # when keys are read from a bad environment
    with pytest.raises(CipherKeyError) as refused:
        CipherKeys.from_environment(environ)

    # then the error says what is wrong without the value
    message = str(refused.value)
    assert says in message
    for variable in (CIPHER_KEY_VARIABLE, CIPHER_OLD_KEYS_VARIABLE):
        value = environ.get(variable)
        if value:
            assert value not in message


def test_a_key_file_holds_the_current_key_then_the_old_ones(tmp_path: Path) -> None:
    # given a key file with B on its first line and A on a later one
    key_file = tmp_path / "keys"
    key_file.write_text(f"{KEY_B}\n\n{KEY_A}\n", encoding="ascii")

    # when keys are read from it
    keys = CipherKeys.from_environment({CIPHER_KEY_FILE_VARIABLE: str(key_file)})

    # then B is current and A kept for reading
    assert keys == CipherKeys(KEY_B, (KEY_A,))


def test_no_encryption_without_a_key() -> None:
    assert CipherKeys.from_environment({}) is None


def test_settings_read_the_keys_and_pass_them_to_children_by_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given keys in the environment
    monkeypatch.setenv(CIPHER_KEY_VARIABLE, KEY_B)
    monkeypatch.setenv(CIPHER_OLD_KEYS_VARIABLE, KEY_A)

    # when settings are read
    settings = Settings.from_url(data_dir=tmp_path)

    # then they hold the keys, never show them, and hand them to a child
    assert settings.cipher_keys == CipherKeys(KEY_B, (KEY_A,))
    for shown in (repr(settings), str(settings), repr(settings.cipher_keys)):
        assert KEY_A not in shown
        assert KEY_B not in shown
    child = settings.child_environment()
    assert (child[CIPHER_KEY_VARIABLE], child[CIPHER_OLD_KEYS_VARIABLE]) == (
        KEY_B,
        KEY_A,
    )
    assert child[CIPHER_KEY_FILE_VARIABLE] == ""


@pytest.mark.slow
def test_no_command_prints_the_key(tmp_path: Path) -> None:
    # given a key in the environment of eventshop commands
    key = create_key()
    env = {
        **os.environ,
        CIPHER_KEY_VARIABLE: key,
        "EVENTSHOP_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("EVENTSHOP_DATABASE_URL", None)

    # when the demo runs, and then status
    outputs = [
        subprocess.run(
            [sys.executable, "-m", "application.cli", *command],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        for command in (["demo", "--customers", "3", "--threads", "1"], ["status"])
    ]

    # then both succeeded, and neither printed the key
    for output in outputs:
        assert output.returncode == 0, output.stderr
        assert key not in output.stdout
        assert key not in output.stderr
    # and what they stored is encrypted
    settings = Settings.from_url(data_dir=tmp_path / "data")
    assert all(
        state.startswith(MARKER)
        for rows in stored_states(settings).values()
        for state in rows
    )


def storage_arguments(settings: Settings) -> list[str]:
    if settings.engine == "sqlite":
        return ["--data-dir", str(settings.data_dir)]
    return ["--database-url", settings.database_url()]
