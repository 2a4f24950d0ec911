"""Replay throughput: events per second of ``rollguard replay`` in one process.

Run: ``python -m bench.replay_throughput [--services 20] [--minutes 60] [--repeat 3]``.
Generates a recorded file (several services, canaries with a regression in some of them),
then times (1) the replay loop in-process -- parse, validate, observe, decide -- best of
``--repeat``, (2) ``observe`` alone on already-valid events, and (3) the ``rollguard replay``
command end to end, start-up included.
"""

from __future__ import annotations

import argparse
import heapq
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.scenarios import METRICS, Scenario, to_lines
from detectors.events import Event, parse_event
from detectors.monitor import ServiceMonitor, state_size
from detectors.policy import default_policy
from rollguard.replay import Replay


def recording(services: int, minutes: int, rate: float = 1.0) -> tuple[list[bytes], list[Event]]:
    streams = []
    for i in range(services):
        metric = METRICS[i % len(METRICS)] if i % 3 == 0 else None
        streams.append(Scenario(seed=i, service=f"svc-{i:03d}", rate=rate, metric=metric,
                                magnitude=3.0, duration=minutes * 60.0).events())
    events = list(heapq.merge(*streams, key=lambda e: e.ts))
    return to_lines(events), events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--rate", type=float, default=1.0,
                        help="candidate events/s per service (the stable gets 4x that)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    lines, events = recording(args.services, args.minutes, args.rate)
    policy = default_policy()
    best = float("inf")
    decisions = 0
    for _ in range(args.repeat):
        replay = Replay(policy)
        started = time.perf_counter()
        replay.feed_lines(lines)
        replay.finish()
        best = min(best, time.perf_counter() - started)
        decisions = len(replay.decisions)
    parse_best = float("inf")
    for _ in range(args.repeat):
        started = time.perf_counter()
        for line in lines:
            parse_event(line)
        parse_best = min(parse_best, time.perf_counter() - started)
    observe_best = float("inf")
    sizes: list[int] = []
    for _ in range(args.repeat):
        monitors: dict[str, ServiceMonitor] = {}
        started = time.perf_counter()
        for event in events:
            monitor = monitors.get(event.service)
            if monitor is None:
                monitor = monitors[event.service] = ServiceMonitor(event.service, policy)
            monitor.observe(event)
        observe_best = min(observe_best, time.perf_counter() - started)
        sizes = sorted(state_size(m) for m in monitors.values())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        started = time.perf_counter()
        command_line = [str(Path(sys.executable).parent / "rollguard"), "replay", str(path)]
        subprocess.run(command_line, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        command = time.perf_counter() - started
    n = len(lines)
    print(f"| recording | {n:,} events, {args.services} services at {args.rate * 5:g} ev/s each,"
          f" {args.minutes} min of event time, {decisions} decisions |")
    print("| --- | ---: |")
    print(f"| replay loop in-process (parse + validate + observe + decide) | "
          f"**{n / best:,.0f} events/s** ({best * 1e6 / n:.1f} µs/event) |")
    print(f"| parse + validate only | {n / parse_best:,.0f} events/s "
          f"({parse_best * 1e6 / n:.1f} µs/event) |")
    print(f"| `ServiceMonitor.observe` only (valid events, bucket closes included) | "
          f"{observe_best * 1e6 / n:.2f} µs/event |")
    print(f"| `rollguard replay FILE > /dev/null`, start-up included | {n / command:,.0f} "
          f"events/s ({command:.2f} s) |")
    print(f"| state per service after {args.minutes} min (`to_bytes`) | median "
          f"{sizes[len(sizes) // 2]:,} B, max {sizes[-1]:,} B |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
