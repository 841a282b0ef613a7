"""The entry point of the helper process in which an embedded shop hosts its
subscribers (see ``application.subscribers.helper_process`` for the shop's side and
the line between them).

It opens the shop's services and view store of its own (from the composition
root, ``application.bootstrap``) and hosts the subscribers over them; so it
sits above both the root and the hosting, which start it.
"""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from application.bootstrap import open_stores
from application.subscribers.helper_process import (
    cannot_signal_other_processes,
    read_settings,
    relay_writes,
)
from application.subscribers.hosting import Subscribers


def _stop_on_sigterm() -> None:
    def stop(_signal: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


def main() -> None:
    """Hosts the shop's subscribers until the shop closes its end of stdin."""
    logging.basicConfig(
        level=logging.WARNING, format="subscriber process %(process)d: %(message)s"
    )
    _stop_on_sigterm()
    stdin = sys.stdin.buffer
    settings, names = read_settings(stdin)
    with open_stores(settings) as stores:
        databases = {
            index: stores.services[name].recorder.datastore.pool.db_name  # type: ignore[attr-defined]
            for index, name in enumerate(names)
            if cannot_signal_other_processes(stores.services[name])
        }
        hosted = Subscribers(settings, stores.services, stores.views)
        hosted.start()
        try:
            relay_writes(stdin, databases)
        finally:
            hosted.stop()
