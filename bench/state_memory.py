"""Per-service state at 10,000 services: bytes in the table (changelog) and in memory.

    .venv/bin/python -m bench.state_memory --services 10000 --minutes 30
    .venv/bin/python -m bench.state_memory --services 10000 --minutes 10 --cohorts 8

Each service sees a stable and a candidate release for ``minutes`` of event time; state must
stay bounded however long the stream runs, so the run also reports the size after half the
time to show it does not grow. With ``--cohorts N`` each event carries one of N cohorts
(drawn uniformly), so the per-cohort references and tests are held too.
"""

from __future__ import annotations

import argparse
import os
import random

from rollguard.detectors.events import Event
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.policy import default_policy

T0 = 1_763_856_000.0


def feed(monitor: ServiceMonitor, rng: random.Random, start: float, seconds: float,
         rate: float, cohorts: int = 0) -> None:
    t, step = start, 1.0 / rate
    n = 0
    while t < start + seconds:
        release = "v2" if rng.random() < 0.5 else "v1"
        metrics = {"hallucination": float(rng.random() < 0.05), "toxicity": rng.random() * 0.1,
                   "accuracy": 0.9, "latency_ms": 400 + rng.expovariate(1 / 200),
                   "cost_usd": 0.003, "error": float(rng.random() < 0.01),
                   "complaint": 0.0}
        cohort = f"c{rng.randrange(cohorts)}" if cohorts else ""
        monitor.observe(Event(f"{monitor.service}-{n}-{t}", t, monitor.service, release,
                              cohort, metrics))
        t += step
        n += 1


def resident_bytes() -> int:
    """The process's resident memory (Linux), a cheap stand-in for tracing allocations."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=0.5, help="events/s per service")
    parser.add_argument("--cohorts", type=int, default=0, help="cohorts per service")
    args = parser.parse_args()
    policy = default_policy()
    rng = random.Random(1)
    before = resident_bytes()
    monitors = [ServiceMonitor(f"svc-{i}", policy) for i in range(args.services)]
    for m in monitors:
        m.set_roles("v1", "v2")
    half = args.minutes * 30.0
    for m in monitors:
        feed(m, rng, T0, half, args.rate, args.cohorts)
    half_bytes = sum(len(m.to_bytes()) for m in monitors) / args.services
    for m in monitors:
        feed(m, rng, T0 + half, half, args.rate, args.cohorts)
    live = resident_bytes() - before
    full_bytes = sum(len(m.to_bytes()) for m in monitors) / args.services
    print(f"services: {args.services:,}, {args.minutes:g} min of event time at "
          f"{args.rate:g} events/s each, {args.cohorts} cohorts")
    print(f"table (changelog) bytes per service: {half_bytes:,.0f} after half the time, "
          f"{full_bytes:,.0f} at the end")
    print(f"resident memory per live monitor:    {live / args.services:,.0f} bytes "
          f"({live / 2**20:,.1f} MiB for all)")
    ids = sum(m.remembered_ids for m in monitors) / args.services
    print(f"event ids remembered per service:    {ids:,.0f} (the dedupe memory)")


if __name__ == "__main__":
    main()
