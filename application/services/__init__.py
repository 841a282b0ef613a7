"""The three services, each an eventsourcing application with its own event log."""

from application.services.carts import Carts
from application.services.inventory import Inventory
from application.services.orders import Orders

__all__ = ["Carts", "Inventory", "Orders"]
