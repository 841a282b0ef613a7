"""Fixtures shared by the application tests: one service at a time, on the
engine the test is parametrized with (``settings``, from ``tests/conftest.py``),
closed after the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from application import Settings
from application.services import Inventory, Orders


@pytest.fixture
def inventory(settings: Settings) -> Iterator[Inventory]:
    with Inventory(settings) as service:
        yield service


@pytest.fixture
def orders(settings: Settings) -> Iterator[Orders]:
    with Orders(settings) as service:
        yield service
