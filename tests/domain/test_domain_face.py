"""The domain package's face: every name it offers, each loaded when first
asked for (PEP 562), none of its modules loaded with the package itself."""

from __future__ import annotations

from importlib import import_module

import pytest

import domain
from tests.support.fresh_interpreter import modules_loaded_after


def test_every_name_offered_is_the_one_its_module_defines() -> None:
    assert sorted(domain.__all__) == sorted(domain._MODULE_OF)
    for name, module in domain._MODULE_OF.items():
        assert getattr(domain, name) is getattr(import_module(module), name)


def test_from_domain_import_works_for_every_name() -> None:
    namespace: dict[str, object] = {}
    exec(f"from domain import {', '.join(domain.__all__)}", namespace)
    assert set(domain.__all__) <= set(namespace)


def test_importing_the_package_loads_none_of_its_modules() -> None:
    assert modules_loaded_after("import domain", prefixes=("domain.",)) == []


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = domain.Nothing
