"""The services' names, as their logs are known by, spelt out so that a light
module (the command line's parser, the audit's argument checks) needs to load
no service. ``tests/application/test_topology.py`` holds them to the
topology's (``application.topology``)."""

from __future__ import annotations

SERVICE_NAMES = ("Carts", "Orders", "Inventory")
