"""The domain package's face: every name it offers, each loaded when first
asked for (PEP 562), none of its modules loaded with the package itself."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

import domain

ROOT = Path(__file__).resolve().parents[2]


def test_every_name_offered_is_the_one_its_module_defines() -> None:
    assert sorted(domain.__all__) == sorted(domain._MODULE_OF)
    for name, module in domain._MODULE_OF.items():
        assert getattr(domain, name) is getattr(import_module(module), name)


def test_from_domain_import_works_for_every_name() -> None:
    namespace: dict[str, object] = {}
    exec(f"from domain import {', '.join(domain.__all__)}", namespace)
    assert set(domain.__all__) <= set(namespace)


def test_importing_the_package_loads_none_of_its_modules() -> None:
    probe = (
        "import domain, json, sys\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('domain.'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = domain.Nothing
