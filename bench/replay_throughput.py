"""Replay throughput: events per second of ``rollguard replay``, in one process and end to end.

Run: ``python -m bench.replay_throughput [--services 10] [--rate 2] [--minutes 90]
[--repeat 3] [--keep FILE]``. The defaults make the recording of the goal in docs/benchmarks.md: 10
services at 10 events/s each (``--rate`` candidate events/s; the stable gets 4x that) for 90
minutes, every event with all seven standard metrics, a candidate on a canary from minute 10
in every service and a regression of one metric in every third one: about 540,000 lines, one
event object per line. It then times (1) ``rollguard replay FILE`` end to end, start-up
included (best of ``--repeat`` runs of the installed command, as ``time`` would), (2) the
replay loop in-process -- parse, validate, observe, decide -- best of ``--repeat``,
(3) parse + validate alone, and (4) ``observe`` alone on already-valid events.
"""

from __future__ import annotations

import argparse
import heapq
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.scenarios import METRICS, Scenario, to_lines
from rollguard.analysis.replay import Replay
from rollguard.detectors.events import Event, parse_event
from rollguard.detectors.monitor import ServiceMonitor, state_size
from rollguard.detectors.policy import default_policy


def recording(services: int, minutes: int, rate: float = 2.0,
              graded: float = 1.0) -> tuple[list[bytes], list[Event]]:
    """Lines (one event object each) and events of ``services`` services merged in time order.

    ``graded`` is the share of events with an accuracy metric (the other six are on all).
    """
    streams = []
    for i in range(services):
        metric = METRICS[i % len(METRICS)] if i % 3 == 0 else None
        streams.append(Scenario(seed=i, service=f"svc-{i:03d}", rate=rate, metric=metric,
                                magnitude=3.0, duration=minutes * 60.0, graded=graded).events())
    events = list(heapq.merge(*streams, key=lambda e: e.ts))
    return to_lines(events), events


def best_of(repeat: int, work: Callable[[], object]) -> float:
    """The shortest wall time of ``repeat`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def time_command(path: Path, repeat: int) -> list[float]:
    """Wall times of ``rollguard replay PATH > /dev/null``, start-up included."""
    command_line = [str(Path(sys.executable).parent / "rollguard"), "replay", str(path)]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command_line, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return times


def in_process(lines: list[bytes], events: list[Event], repeat: int) -> dict[str, float]:
    """Seconds (best of ``repeat``) of the replay loop, of parsing, and of observe alone."""
    policy = default_policy()

    def replay() -> None:
        run = Replay(policy)
        run.feed_lines(lines)
        run.finish()

    def parse() -> None:
        for line in lines:
            parse_event(line)

    def observe() -> None:
        monitors: dict[str, ServiceMonitor] = {}
        for event in events:
            monitor = monitors.get(event.service)
            if monitor is None:
                monitor = monitors[event.service] = ServiceMonitor(event.service, policy)
            monitor.observe(event)

    return {"replay": best_of(repeat, replay), "parse": best_of(repeat, parse),
            "observe": best_of(repeat, observe)}


def state_sizes(events: list[Event]) -> list[int]:
    """Serialised state per service after all the events, smallest first."""
    policy = default_policy()
    monitors: dict[str, ServiceMonitor] = {}
    for event in events:
        monitors.setdefault(event.service, ServiceMonitor(event.service, policy)).observe(event)
    return sorted(state_size(m) for m in monitors.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--minutes", type=int, default=90)
    parser.add_argument("--rate", type=float, default=2.0,
                        help="candidate events/s per service (the stable gets 4x that)")
    parser.add_argument("--graded", type=float, default=1.0,
                        help="share of events that carry an accuracy metric")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", metavar="FILE", help="write the recording here and keep it")
    args = parser.parse_args(argv)
    lines, events = recording(args.services, args.minutes, args.rate, args.graded)
    n = len(lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep or Path(tmp) / "events.jsonl")
        path.write_bytes(b"\n".join(lines) + b"\n")
        commands = time_command(path, args.repeat)
    run = Replay(default_policy())
    run.feed_lines(lines)
    decisions = run.finish().decisions
    took = in_process(lines, events, args.repeat)
    sizes = state_sizes(events)
    command = min(commands)
    print(f"| recording | {n:,} lines (one event each), {args.services} services at "
          f"{args.rate * 5:g} ev/s each, {args.minutes} min of event time; decisions: "
          f"{', '.join(f'{k} {v}' for k, v in sorted(decisions.items())) or 'none'} |")
    print("| --- | ---: |")
    print(f"| `rollguard replay FILE > /dev/null`, start-up included, best of {args.repeat} | "
          f"**{n / command:,.0f} lines/s** ({command:.2f} s; all runs: "
          f"{', '.join(f'{t:.2f}' for t in commands)} s) |")
    for key, what in (("replay", "replay loop in-process (parse + validate + observe + decide)"),
                      ("parse", "parse + validate only")):
        print(f"| {what} | {n / took[key]:,.0f} events/s ({took[key] * 1e6 / n:.2f} µs/event) |")
    print(f"| `ServiceMonitor.observe` only (valid events, bucket closes included) | "
          f"{took['observe'] * 1e6 / n:.2f} µs/event |")
    print(f"| state per service after {args.minutes} min (`to_bytes`) | median "
          f"{sizes[len(sizes) // 2]:,} B, max {sizes[-1]:,} B |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
