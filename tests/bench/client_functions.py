"""Client functions for the process tests: importable, so that spawned
processes find them."""

from __future__ import annotations

import os

from bench.processes import StartSignal


def report_pid(number: int, *, start: StartSignal) -> tuple[int, int]:
    start()
    return number, os.getpid()


def fail_after_start(number: int, *, start: StartSignal) -> int:
    start()
    if number == 1:
        raise ValueError(f"client {number} refuses")
    return number
