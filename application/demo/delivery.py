"""Made-up delivery details for the demo's and the benchmarks' customers:
plausible, the same for a customer every run, and nobody's real data (the
e-mail domain is reserved for examples, RFC 2606)."""

from __future__ import annotations

import zlib
from typing import TypedDict

_GIVEN = ("Alex", "Sam", "Robin", "Kim", "Jo", "Charlie", "Toni", "Maxi")
_FAMILY = ("Example", "Sample", "Tester", "Demo", "Placeholder", "Fictional")
_STREETS = ("Test Road", "Sample Lane", "Demo Street", "Example Way", "Mock Row")


class FakeDelivery(TypedDict):
    name: str
    email: str
    address: str


def fake_delivery(customer_id: str) -> FakeDelivery:
    """``Shop.checkout``'s delivery arguments for ``customer_id``."""
    # crc32, not hash(): the same details in every process and run.
    number = zlib.crc32(customer_id.encode())
    given = _GIVEN[number % len(_GIVEN)]
    family = _FAMILY[number // 8 % len(_FAMILY)]
    street = _STREETS[number // 64 % len(_STREETS)]
    return FakeDelivery(
        name=f"{given} {family}",
        email=f"{given.lower()}.{number % 100_000}@example.org",
        address=f"{number % 200 + 1} {street}, {number % 90_000 + 10_000} Testville",
    )
