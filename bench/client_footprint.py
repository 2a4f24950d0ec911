"""What a serving process pays for the client: a plain install's size and packages, and the time
``from rollguard import PointerReader, Emitter`` takes, each in a fresh virtual environment.

Run: ``.venv/bin/python -m bench.client_footprint [--rev main] [--repeat 15]``. For each tree
(this checkout as committed, ``HEAD``, and optionally ``--rev`` of the same repository, e.g. the
commit before the light client, in one run), ``git archive`` copies the tree to a temporary
folder, a wheel is built from it, and a new venv gets that wheel with its own dependencies
only (no extras), from pip's index or cache. Then, in that venv:

- the distributions installed and the size of ``site-packages`` (pip and setuptools, which
  every venv has, are left out of both);
- the top-level names the wheel puts in ``site-packages`` (``top_level.txt``);
- ``from rollguard import PointerReader, Emitter`` in ``--repeat`` fresh interpreters, timed
  inside the process around the import alone (median and best), with the modules it leaves
  loaded and whether Faust, River or NumPy is among them; the same with ``asyncio`` imported
  first, as any asyncio server has it (the import's own cost); and the first use (a reader and
  an emitter made, which loads redis-py and aiokafka), so that the time moved out of the import
  is shown, not hidden.

No server is needed. Needs the network or a pip cache that holds the dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALWAYS_THERE = {"pip", "setuptools"}  # what `python -m venv` puts in every venv
HEAVY = ("faust", "river", "numpy", "scipy", "pandas")

PROBE = """
import json, sys, time
{before}
start = time.perf_counter()
from rollguard import PointerReader, Emitter
imported = time.perf_counter()
modules = len(sys.modules)
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
{use}
used = time.perf_counter()
print(json.dumps({{"import_s": imported - start, "use_s": used - imported,
                  "modules": modules, "heavy": heavy}}))
"""
USE = """
reader = PointerReader("redis://127.0.0.1:1/0", "support-bot")
emitter = Emitter(bootstrap="127.0.0.1:1")
import aiokafka, redis.asyncio  # what start() loads, in the trees that load it there
"""


@dataclass
class Footprint:
    label: str
    distributions: list[str]
    site_packages_mb: float
    top_level: list[str]
    import_ms: list[float]
    import_after_asyncio_ms: list[float]
    first_use_ms: list[float]
    modules: int
    heavy: list[str]


def run(command: list[str], cwd: str | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd,
                            env=env)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def build_wheel(rev: str, work: Path) -> Path:
    """A wheel of the tree at ``rev``, built from a copy (the checkout stays untouched)."""
    tree = work / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"),
         str(tree)])
    [wheel] = (work / "dist").glob("rollguard-*.whl")
    return wheel


def site_packages(venv: Path) -> Path:
    return Path(run([str(venv / "bin" / "python"), "-c",
                     "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())


def size_mb(folder: Path, skip: set[str]) -> float:
    total = 0
    for entry in folder.iterdir():
        name = entry.name.split("-")[0].lower()
        if name in skip or entry.name.startswith(("_distutils_hack", "distutils-precedence")):
            continue
        paths = entry.rglob("*") if entry.is_dir() else [entry]
        total += sum(p.lstat().st_size for p in paths if p.is_file() or p.is_symlink())
    return total / 1e6


def probe(python: Path, before: str, repeat: int) -> list[dict[str, object]]:
    script = PROBE.format(before=before, use=USE, heavy=HEAVY)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    run([str(python), "-c", script], cwd="/", env=env)  # compiles the .pyc files once
    return [json.loads(run([str(python), "-c", script], cwd="/", env=env))
            for _ in range(repeat)]


def measure(label: str, rev: str, repeat: int) -> Footprint:
    with tempfile.TemporaryDirectory(prefix="rollguard-footprint-") as folder:
        work = Path(folder)
        wheel = build_wheel(rev, work)
        venv = work / "venv"
        run([sys.executable, "-m", "venv", str(venv)])
        python = venv / "bin" / "python"
        run([str(python), "-m", "pip", "install", "-q", str(wheel)])
        listed = json.loads(run([str(python), "-m", "pip", "list", "--format", "json"]))
        distributions = sorted(d["name"] for d in listed if d["name"].lower() not in ALWAYS_THERE)
        packages = site_packages(venv)
        [info] = packages.glob("rollguard-*.dist-info")
        top_level = (info / "top_level.txt").read_text().split()
        cold = probe(python, "", repeat)
        warm = probe(python, "import asyncio", repeat)
        return Footprint(
            label, distributions, size_mb(packages, ALWAYS_THERE), top_level,
            [1000 * float(r["import_s"]) for r in cold],  # type: ignore[arg-type]
            [1000 * float(r["import_s"]) for r in warm],  # type: ignore[arg-type]
            [1000 * float(r["use_s"]) for r in cold],  # type: ignore[arg-type]
            int(cold[0]["modules"]), list(cold[0]["heavy"]),  # type: ignore[call-overload]
        )


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.0f} ms, best {min(values):.0f} ms"


def report(found: Footprint) -> None:
    print(f"== {found.label}")
    print(f"   installed: {len(found.distributions)} distributions, "
          f"{found.site_packages_mb:.1f} MB in site-packages (pip and setuptools left out)")
    print(f"   distributions: {', '.join(found.distributions)}")
    print(f"   top-level names: {', '.join(found.top_level)}")
    print(f"   `from rollguard import PointerReader, Emitter`: {summary(found.import_ms)}; "
          f"after `import asyncio`: {summary(found.import_after_asyncio_ms)}")
    print(f"   then a reader and an emitter made (redis-py and aiokafka loaded): "
          f"{summary(found.first_use_ms)}")
    print(f"   modules loaded by the import: {found.modules}; of {', '.join(HEAVY)}: "
          f"{', '.join(found.heavy) or 'none'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="also measure this revision (e.g. main), before HEAD")
    parser.add_argument("--repeat", type=int, default=15, help="fresh interpreters per timing")
    args = parser.parse_args(argv)
    print(f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    revisions = [(f"{args.rev} (before)", args.rev)] if args.rev else []
    for label, rev in [*revisions, ("HEAD", "HEAD")]:
        report(measure(label, rev, args.repeat))


if __name__ == "__main__":
    main()
