"""The ``eventshop`` command line: ``parser`` (arguments only, light to load),
``commands`` (the table of what each command does, from one module per
command group: ``demo_commands``, ``subscriber_commands``, ``rebuild_commands``,
``dead_letter_commands``, ``audit_commands``), ``audit_rendering`` (the audit
queries as tables, trees, JSON Lines and CSV), ``options`` (settings from the
common options).

``main`` is the entry point of the installed script and of
``python -m application.cli``.
"""

from application.cli.parser import main

__all__ = ["main"]
