"""The pure core (``rollguard.detectors``) imports nothing of the edges and no I/O library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).parents[3] / "detectors"
IO_LIBRARIES = ("faust", "aiokafka", "redis", "asyncio")
MODULES = sorted(f"rollguard.detectors.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__init__")


def forbidden(module: str) -> bool:
    """Whether the core may not import ``module``: an I/O library, or any part of rollguard
    but the core itself (``rollguard`` alone is the package's lazy front door, and stays cheap).

    >>> [forbidden(m) for m in ("rollguard.detectors.track", "rollguard", "yaml", "redis.asyncio",
    ...                         "rollguard.actions.keys", "rollguard.base.errors")]
    [False, False, False, True, True, True]
    """
    root = module.split(".")[0]
    if root == "rollguard":
        return module != "rollguard" and not module.startswith("rollguard.detectors")
    return root in IO_LIBRARIES


def imported_modules(source: str) -> set[str]:
    """Every module an import in ``source`` names, function-level imports included.

    >>> sorted(imported_modules("import a.b\\nfrom c.d import e\\ndef f():\\n    import g"))
    ['a.b', 'c.d', 'g']
    """
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_no_core_module_imports_an_edge_or_io_library(path: Path) -> None:
    """No import statement of a core module, anywhere in it, names an edge or an I/O library."""
    assert [m for m in sorted(imported_modules(path.read_text())) if forbidden(m)] == []


def test_importing_the_whole_core_loads_no_edge_or_io_library() -> None:
    """Importing every core module in a fresh interpreter loads nothing forbidden, even
    indirectly."""
    script = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}: importlib.import_module(name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=CORE.parent)
    assert len(MODULES) > 10  # the glob found the core
    loaded = result.stdout.split()
    assert "rollguard.detectors.monitor" in loaded
    assert [m for m in loaded if forbidden(m)] == []
