"""The detectors core's cost per event, as instructions counted by valgrind (callgrind).

Run: ``python -m bench.core_cost [--before TREE] [--minutes 25]``. One recording (12
services from 0.2 to 20 events/s, canaries from minute 10, a regression in every third,
a 5-minute error shock of both releases in every fourth) is fed to the monitors
(:class:`rollguard.detectors.monitors.MonitorSet`, as replay and the worker do) under
callgrind; the instructions of loading the same recording alone are subtracted, so the
figure is the core's: intake, bucket sums, assessment, decisions. Instruction counts do not
depend on what else the machine is doing, so before and after compare in one run on a busy
machine. ``--before`` names a source tree of the core to compare with (e.g. a ``git
worktree`` of an earlier commit): the same recording is fed to it.
"""

from __future__ import annotations

import argparse
import heapq
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.scenarios import METRICS, Scenario, Shock

RATES = (0.2, 0.5, 1.0, 2.0, 5.0, 20.0)


def recording(minutes: float) -> list[tuple[str, float, str, str, dict[str, float]]]:
    streams = []
    for i in range(12):
        rate = RATES[i % len(RATES)]
        shocks = (Shock("error", 900.0, 300.0, 10.0),) if i % 4 == 0 else ()
        metric = METRICS[i % len(METRICS)] if i % 3 == 0 else None
        scenario = Scenario(i, rate=rate / 2, stable_rate=rate / 2, duration=60 * minutes,
                            metric=metric, magnitude=3.0 if metric else 0.0, onset=600.0,
                            service=f"svc-{i}", shocks=shocks)
        streams.append(scenario.events())
    merged = heapq.merge(*streams, key=lambda e: e.ts)
    return [(e.event_id, e.ts, e.service, e.release, e.metrics) for e in merged]


def feed(path: str, load_only: bool) -> None:
    """Load the recording (and feed it to the monitors unless ``load_only``)."""
    from rollguard.detectors.events import Event
    from rollguard.detectors.monitors import MonitorSet
    from rollguard.detectors.policy import default_policy

    rows = pickle.loads(Path(path).read_bytes())
    events = [Event(i, ts, s, r, "", m) for i, ts, s, r, m in rows]
    monitors = MonitorSet(default_policy())
    if load_only:
        return
    started = time.process_time()
    for event in events:
        monitors.feed([(event, None, None)])
    monitors.flush()
    print(f"cpu_s={time.process_time() - started:.3f}", file=sys.stderr)


def instructions(tree: Path, path: str, load_only: bool) -> int:
    args = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
            sys.executable, "-m", "bench.core_cost", "--feed", path]
    if load_only:
        args.append("--load-only")
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    done = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from callgrind: {done.stderr[-500:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, help="a source tree to compare with")
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--feed", help=argparse.SUPPRESS)
    parser.add_argument("--load-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.feed:
        feed(args.feed, args.load_only)
        return 0
    rows = recording(args.minutes)
    here = Path(__file__).resolve().parent.parent
    trees = [("before", args.before.resolve()), ("after", here)] if args.before else [
        ("this tree", here)]
    with tempfile.NamedTemporaryFile(suffix=".pickle") as out:
        out.write(pickle.dumps(rows))
        out.flush()
        per_event = {}
        for name, tree in trees:
            cost = instructions(tree, out.name, False) - instructions(tree, out.name, True)
            per_event[name] = cost / len(rows)
            print(f"{name}: {per_event[name]:,.0f} instructions per event "
                  f"({len(rows):,} events, {tree})")
    if args.before:
        print(f"after / before: {per_event['after'] / per_event['before']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
