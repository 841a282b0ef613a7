"""A NATS server with JetStream of a test's own (``bench.nats_server``: on a
free port of 127.0.0.1, storing into a temporary folder, which a test may stop
and start again on the same port; never the shared server on :4222).

When ``nats-server`` is not installed the test skips, or fails under
``EVENTSHOP_TEST_NATS=required`` (CI)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bench.nats_server import PrivateNats, nats_server_binary, running_nats

__all__ = ["NATS_MODE_VARIABLE", "PrivateNats", "private_nats", "require_nats_server"]

NATS_MODE_VARIABLE = "EVENTSHOP_TEST_NATS"


def require_nats_server() -> str:
    """The ``nats-server`` binary; skips the test (or fails it, if required)
    when there is none."""
    binary = nats_server_binary()
    if binary is None:
        reason = "nats-server is not installed"
        if os.environ.get(NATS_MODE_VARIABLE) == "required":
            pytest.fail(f"{NATS_MODE_VARIABLE}=required but {reason}", pytrace=False)
        pytest.skip(reason)
    return binary


@contextmanager
def private_nats(*, started: bool = True) -> Iterator[PrivateNats]:
    with running_nats(require_nats_server(), started=started) as server:
        yield server
