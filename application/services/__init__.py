"""The three services, each an eventsourcing application with its own event log.

``Carts``, ``Orders`` and ``Inventory`` are imported when first asked for
(PEP 562), so that a light module of this package (the aggregate views, the
audit metadata) can be imported without the storage drivers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from application.services.carts import Carts
    from application.services.inventory import Inventory
    from application.services.orders import Orders

__all__ = ["Carts", "Inventory", "Orders"]


def __getattr__(name: str) -> object:
    if name == "Carts":
        from application.services.carts import Carts

        return Carts
    if name == "Orders":
        from application.services.orders import Orders

        return Orders
    if name == "Inventory":
        from application.services.inventory import Inventory

        return Inventory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
