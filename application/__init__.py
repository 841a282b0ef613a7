"""eventshop's application layer: the services and the ``Shop`` facade.

The names below are imported when first asked for (PEP 562), not with the
package: importing one of its modules (``application.config``, say, for the
command line's parser) must not load ``Shop`` and with it the storage drivers,
the runners and rich.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from application.config import Settings
    from application.services.aggregate_views import CartView, OrderView, StockView
    from application.shop import Shop

__all__ = ["CartView", "OrderView", "Settings", "Shop", "StockView"]


def __getattr__(name: str) -> object:
    if name == "Shop":
        from application.shop import Shop

        return Shop
    if name == "Settings":
        from application.config import Settings

        return Settings
    if name in {"CartView", "OrderView", "StockView"}:
        from application.services import aggregate_views as dto

        return getattr(dto, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
