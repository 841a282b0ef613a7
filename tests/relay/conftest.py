"""Fixtures of the relay's tests: a NATS server of the test's own, and a
client of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from application.relay.jetstream import JetStream
from tests.support.private_nats import PrivateNats, private_nats


@pytest.fixture
def nats_server() -> Iterator[PrivateNats]:
    with private_nats() as server:
        yield server


@pytest.fixture
def broker(nats_server: PrivateNats) -> Iterator[JetStream]:
    client = JetStream(nats_server.url, timeout=2.0)
    yield client
    client.close()
