"""Fixtures shared by the fault tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.private_postgres import PrivateCluster, private_postgres


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    """A PostgreSQL cluster of the module's own, for tests that stop or restart
    the database (never the shared server the other tests use)."""
    with private_postgres() as started:
        yield started
