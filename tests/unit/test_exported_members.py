"""The public API: ``from rollguard import ...`` names, where they come from, and what importing
``rollguard`` costs."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import rollguard


def type_checking_imports() -> dict[str, str]:
    """Name -> module of the imports in ``rollguard/__init__.py``'s ``if TYPE_CHECKING:``."""
    tree = ast.parse(Path(rollguard.__file__).read_text())
    [block] = [n for n in tree.body if isinstance(n, ast.If)
               and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING"]
    return {alias.name: node.module for node in block.body
            if isinstance(node, ast.ImportFrom) and node.module for alias in node.names}


def test_all_is_sorted_and_without_repeats() -> None:
    """``__all__`` is sorted (classes first, as plain sorting puts capitals first), no repeats."""
    assert rollguard.__all__ == sorted(set(rollguard.__all__))


def test_lazy_map_and_type_checking_imports_export_exactly_all() -> None:
    """What type checkers see, what is loaded lazily and ``__all__`` are the same names, each
    from the same module."""
    assert set(rollguard._EXPORTS) == set(rollguard.__all__)
    assert type_checking_imports() == rollguard._EXPORTS


@pytest.mark.parametrize("name", rollguard.__all__)
def test_every_name_resolves_to_the_object_its_defining_module_holds(name: str) -> None:
    """Each public name comes from the module that defines it, not from one re-exporting it."""
    value = getattr(rollguard, name)
    module = rollguard._EXPORTS[name]
    assert value is getattr(importlib.import_module(module), name)
    assert inspect.getmodule(value).__name__ == module  # type: ignore[union-attr]


def test_an_unknown_name_is_an_attribute_error() -> None:
    """A misspelt name fails like any missing attribute (and submodules still import)."""
    with pytest.raises(AttributeError, match="PointerRaeder"):
        rollguard.PointerRaeder  # noqa: B018
    assert importlib.import_module("rollguard.base.config").__name__ == "rollguard.base.config"


def test_importing_rollguard_loads_no_kafka_redis_faust_or_river() -> None:
    """``import rollguard`` stays cheap; the libraries load only with a name that needs them."""
    heavy = ("faust", "aiokafka", "redis", "river")
    script = (
        "import sys, rollguard\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))\n"
        "from rollguard import PointerStore\n"
        "print('redis' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["[]", "True"]  # the second line: a real negative control
