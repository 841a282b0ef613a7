"""A JSON mapper for the domain tests that owes nothing to the application.

The store writes events as JSON: UUIDs, Decimals and datetimes by the library's
transcodings, and the domain's one value object, ``Line``, as a dict. The
application has its own ``Line`` transcoding; the domain tests must not import
it (the domain is tested on its own), so they get this one, which treats any
frozen dataclass of the domain as its fields. It asks the same question of the
domain, "is every event and snapshot made of things JSON can carry back?", and
the application's transcoding is exercised by every test that stores a cart.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    Transcoding,
    UUIDAsHex,
)

from domain.values import Line

V = TypeVar("V")


class DataclassAsDict(Transcoding, Generic[V]):
    """A dataclass as a dict of its fields; the fields' own values (a Decimal,
    say) are transcoded by theirs, inside out."""

    def __init__(self, cls: type[V]) -> None:
        self.type = cls
        self.name = f"test_{cls.__qualname__.lower()}"
        self._cls = cls

    def encode(self, obj: V) -> dict[str, Any]:
        return {field.name: getattr(obj, field.name) for field in fields(obj)}  # type: ignore[arg-type]

    def decode(self, data: dict[str, Any]) -> V:
        return self._cls(**data)


def json_mapper() -> Mapper[UUID]:
    """A mapper that writes and reads events as JSON bytes, as the store does."""
    transcoder = JSONTranscoder()
    for transcoding in (
        UUIDAsHex(),
        DecimalAsStr(),
        DatetimeAsISO(),
        DataclassAsDict(Line),
    ):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)
