"""The pure core (``detectors/``) imports nothing of the edges and no I/O library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).parents[2] / "detectors"
FORBIDDEN = ("rollguard", "streams", "actions", "faust", "aiokafka", "redis", "asyncio")
MODULES = sorted(f"detectors.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__init__")


def imported_roots(source: str) -> set[str]:
    """Top-level package of every import in ``source``, function-level imports included.

    >>> sorted(imported_roots("import a.b\\nfrom c.d import e\\ndef f():\\n    import g"))
    ['a', 'c', 'g']
    """
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_no_core_module_imports_an_edge_or_io_library(path: Path) -> None:
    """No import statement of a core module, anywhere in it, names an edge or an I/O library."""
    assert imported_roots(path.read_text()).isdisjoint(FORBIDDEN)


def test_importing_the_whole_core_loads_no_edge_or_io_library() -> None:
    """Importing every core module in a fresh interpreter loads nothing forbidden, even
    indirectly."""
    script = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=CORE.parent)
    assert len(MODULES) > 10  # the glob found the core
    assert result.stdout.strip() == "[]"
