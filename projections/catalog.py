"""Every read model eventshop maintains, in the order they are listed to users."""

from __future__ import annotations

from projections.base import Projection
from projections.stock import StockLevels

PROJECTIONS: tuple[type[Projection], ...] = (StockLevels,)


def projection_named(name: str) -> type[Projection]:
    for projection in PROJECTIONS:
        if projection.name == name:
            return projection
    known = ", ".join(projection.name for projection in PROJECTIONS)
    raise LookupError(f"no projection named {name!r} (known: {known})")
