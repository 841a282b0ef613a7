"""eventshop's application layer: the services and the ``Shop`` facade."""

from application.config import Settings
from application.dto import CartView, OrderView, StockView
from application.shop import Shop

__all__ = ["CartView", "OrderView", "Settings", "Shop", "StockView"]
