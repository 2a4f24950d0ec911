"""A plain install is a client that fits in a serving process: the readers, the emitters and
the errors load none of the worker's libraries, and what needs them says how to get them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rollguard.base.extras import WORKER_MODULES

ROOT = Path(__file__).parents[2]
CLIENT = "from rollguard import BackgroundEmitter, Emitter, PointerReader, RollguardError, " \
         "SyncPointerReader\n"
# Loaded by a subprocess before anything else: the worker extra's modules are not installed.
WITHOUT_WORKER_EXTRA = f"import sys\nfor m in {sorted(WORKER_MODULES)!r}: sys.modules[m] = None\n"


def run_python(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_importing_the_client_loads_no_worker_library() -> None:
    """The client's names bring no Faust, River, NumPy, SciPy, pandas (nor the CLI's
    libraries) into ``sys.modules``; a name that needs them does (the negative control)."""
    heavy = sorted(WORKER_MODULES)
    show = f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))\n"
    result = run_python("import sys\n" + CLIENT + show + "from rollguard import ServiceMonitor\n"
                        + show)
    assert result.returncode == 0, result.stderr
    client, control = result.stdout.splitlines()
    assert client == "[]"
    assert "yaml" in control


def test_the_client_works_without_the_worker_extra() -> None:
    """With the worker extra's modules absent, readers and emitters are made and an event is
    buffered (no server is needed until they start)."""
    script = WITHOUT_WORKER_EXTRA + CLIENT + (
        "emitter = Emitter(bootstrap='127.0.0.1:1')\n"
        "emitter.emit('support-bot', 'v2', {'hallucination': 0, 'latency_ms': 812.0})\n"
        "reader = SyncPointerReader('redis://127.0.0.1:1/0', 'support-bot')\n"
        "background = BackgroundEmitter(bootstrap='127.0.0.1:1')\n"
        "print(emitter.pending, reader.service)\n"
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "support-bot"]


@pytest.mark.parametrize("name", ["ServiceMonitor", "load_policy", "replay_events"])
def test_a_name_that_needs_the_worker_extra_says_what_to_install(name: str) -> None:
    """Without the extra, such a name raises MissingExtra (an ImportError) naming the name,
    the missing library and the install command."""
    script = WITHOUT_WORKER_EXTRA + (
        "import rollguard\n"
        "try:\n"
        f"    rollguard.{name}\n"
        "except rollguard.MissingExtra as exc:\n"
        "    print(isinstance(exc, ImportError), exc)\n"
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"True rollguard.{name} needs the worker extra (")
    assert result.stdout.rstrip().endswith("pip install 'rollguard[worker]'")


def test_the_command_line_without_the_worker_extra_says_so_in_one_line() -> None:
    """``rollguard`` with the extra missing prints one line, no traceback, and exits 1."""
    result = run_python(WITHOUT_WORKER_EXTRA + "from rollguard.__main__ import run\nrun()\n")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: the rollguard command line needs the worker extra")


def test_a_plain_install_requires_none_of_the_worker_distributions() -> None:
    """The distribution's own requirements are the client's: Kafka, Redis and JSON clients;
    Faust, River and the command line's libraries are in the ``worker`` extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [requirement.split(">")[0].split("=")[0].strip().lower()
             for requirement in project["dependencies"]]
    assert names == ["aiokafka", "redis", "orjson"]
    worker = " ".join(project["optional-dependencies"]["worker"])
    assert all(name in worker for name in ("faust-streaming", "river", "click", "PyYAML"))
