"""The layout keeps its promises: imports point downwards only (application ->
projections -> domain), no modules import each other round a cycle, and the
package's face and the command line's parser load nothing heavy that their
user did not ask for (the storage drivers, SQLAlchemy, rich)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import application
from application import config, shop
from application.cli.commands import COMMANDS
from application.cli.parser import build_parser
from application.services import aggregate_views as dto
from tests.support.fresh_interpreter import modules_loaded_after
from tests.support.import_graph import (
    ROOT,
    Import,
    cycles,
    describe,
    import_graph,
    modules_imported,
)

HEAVY = ("psycopg", "rich", "sqlalchemy")


def imports_across(importing: str, imported: tuple[str, ...]) -> list[Import]:
    return [
        step
        for steps in import_graph().values()
        for step in steps
        if step.importer.split(".")[0] == importing
        and step.imported.split(".")[0] in imported
    ]


def test_no_modules_import_each_other_round_a_cycle() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(map(describe, found))


def test_the_domain_imports_neither_projections_nor_application() -> None:
    assert imports_across("domain", ("application", "projections")) == []


def test_projections_import_nothing_from_the_application() -> None:
    assert imports_across("projections", ("application",)) == []


def test_the_graph_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "application"
    package.mkdir()
    for name in ("domain", "projections"):
        (tmp_path / name).mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def run():\n    from application import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nfrom . import c\n"
        "if TYPE_CHECKING:\n    from application.a import run\n"
    )
    (package / "c.py").write_text("import application.a\n")
    [cycle] = cycles(import_graph(tmp_path))
    assert describe(cycle) == (
        "application.a (line 2) -> application.b (line 2) -> "
        "application.c (line 1) -> application.a"
    )


def modules_loaded(code: str) -> list[str]:
    """Which heavy libraries (or their parts) a fresh interpreter has loaded
    after ``code``."""
    loaded = modules_loaded_after(code, prefixes=HEAVY)
    return sorted({name.split(".")[0] for name in loaded})


def test_importing_the_settings_loads_no_driver_and_no_rich() -> None:
    assert modules_loaded("import application.config") == []


def test_eventshop_help_loads_no_driver_and_no_rich() -> None:
    # Through the entry point's own function, as the installed script calls it.
    code = (
        "import contextlib, io\nfrom application.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0"
    )
    assert modules_loaded(code) == []


def test_the_package_face_still_offers_what_it_did() -> None:
    assert sorted(application.__all__) == [
        "CartView",
        "OrderView",
        "Settings",
        "Shop",
        "StockView",
    ]
    assert application.Shop is shop.Shop
    assert application.Settings is config.Settings
    assert application.CartView is dto.CartView
    assert application.OrderView is dto.OrderView
    assert application.StockView is dto.StockView
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = application.Nothing


def test_every_command_the_parser_offers_has_a_handler() -> None:
    offered = set(handler_names(build_parser()))
    assert offered == set(COMMANDS)


def handler_names(parser: argparse.ArgumentParser) -> list[str]:
    names = []
    if "handler" in parser._defaults:
        names.append(parser._defaults["handler"])
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                names.extend(handler_names(subparser))
    return names


def test_the_domain_tests_import_neither_projections_nor_application() -> None:
    # Through the test helpers they import, too: a helper of ``tests/support``
    # that reached into the application would make the domain's tests its tests.
    pending = sorted((ROOT / "tests" / "domain").glob("*.py"))
    assert pending, "no domain tests found"
    seen: set[Path] = set()
    found = []
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for name, line in modules_imported(path):
            top = name.split(".")[0]
            if top in ("application", "projections"):
                found.append(f"{path.relative_to(ROOT)} (line {line}): {name}")
            elif top == "tests":
                parts = name.split(".")
                for cut in range(len(parts), 1, -1):
                    module = ROOT.joinpath(*parts[:cut])
                    if module.with_suffix(".py").is_file():
                        pending.append(module.with_suffix(".py"))
                        break
                    if (module / "__init__.py").is_file():
                        pending.append(module / "__init__.py")
                        break
    assert found == []
