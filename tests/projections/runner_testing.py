"""Helpers for tests that run subscribers in other processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import IO, Any

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from sqlalchemy import Row, select

from application.config import Settings
from projections.read_models.stock import StockLevels
from projections.store import ViewStore


def start_worker(
    settings: Settings,
    name: str,
    *options: str,
    output: IO[bytes] | int = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """``eventshop worker NAME [OPTIONS]`` in a child process on the same store,
    its output (stdout and stderr) to ``output``: a pipe by default, or a file
    for a worker that runs long enough to fill a pipe nobody reads (it would
    block on its next log line). ``OPTIONS`` may start with more names.
    """
    return _eventshop(settings, ["worker", name, *options], output)


def start_relay(
    settings: Settings, service: str, output: IO[bytes] | int = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    """``eventshop relay SERVICE`` in a child process, as ``start_worker``."""
    return _eventshop(settings, ["relay", service.lower()], output)


def _eventshop(
    settings: Settings, arguments: list[str], output: IO[bytes] | int
) -> subprocess.Popen[bytes]:
    """``eventshop ARGUMENTS`` in a child process given ``settings`` by its
    environment (every part's database, the broker and its feeds)."""
    command = [sys.executable, "-m", "application.cli", *arguments]
    command += ["--database-url", settings.database_url()]
    # What the test set in the environment wins (a payment timeout, say).
    env = {**settings.child_environment(), **os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("EVENTSHOP_DATABASE_URL", None)
    return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)


def eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls ``condition`` until true; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = 0.01
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def stock_rows(store: ViewStore) -> list[Row[Any]]:
    """The rows readers currently see in the stock levels view."""
    table = store.registry.active_tables(StockLevels)["stock_levels"]
    with store.engine.connect() as connection:
        return list(connection.execute(select(table)).all())


def insert_undecodable(service: Application[Any], event_class: type) -> int:
    """Stores an event of ``event_class`` whose state is not JSON (so it
    cannot be decoded) in the service's log; returns its position."""
    service.recorder.insert_events(
        [
            StoredEvent(
                originator_id=uuid.uuid4(),
                originator_version=1,
                topic=get_topic(event_class),
                state=b"not json",
            )
        ]
    )
    return service.recorder.max_notification_id() or 0
