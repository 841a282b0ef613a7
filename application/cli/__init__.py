"""The ``eventshop`` command line: ``parser`` (arguments only, light to load),
``commands`` and ``audit_commands`` (what each command does), ``options``
(settings from the common options).

``main`` is the entry point of the installed script and of
``python -m application.cli``.
"""

from application.cli.parser import main

__all__ = ["main"]
