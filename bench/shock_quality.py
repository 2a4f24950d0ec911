"""Common-mode shocks: what the default policy charges to a candidate that is not at fault.

Run: ``python -m bench.shock_quality [--fleets N] [--services N] [--cutovers N] [--jobs 2]``.
Prints markdown tables:

* healthy canary fleets (:func:`bench.scenarios.shock_fleet`, 0.1-50 events/s, shares
  1-50 %, one shock of 2-20x for 1-20 minutes per service) and the acceptance burst fleet
  (:func:`bench.scenarios.burst_fleet`): false rollbacks and false transient alerts per
  10,000 candidate service-hours, with a 95 % upper bound;
* cutover fleets (:func:`bench.scenarios.cutover_fleet`) whose services share one shock:
  services rolled back, fleet-wide alerts; and with one service regressing alone as well;
* regressions that begin during a shock and after it: rolled back, and their delays.
"""

from __future__ import annotations

import argparse
import heapq
import math
import statistics
import sys
import time
from dataclasses import dataclass, replace
from multiprocessing import Pool

from bench.scenarios import Scenario, Shock, burst_fleet, cutover_fleet, shock_fleet
from rollguard.analysis.replay import replay_events
from rollguard.detectors.decision import Decision
from rollguard.detectors.policy import default_policy


@dataclass
class Said:
    """What the policy said about one healthy candidate (or one cutover fleet)."""

    family: str
    hours: float
    rollbacks: int
    transients: int
    fleet_alerts: int = 0
    held: int = 0


def run_service(job: tuple[str, Scenario]) -> Said:
    family, scenario = job
    decisions = replay_events(scenario.events(), default_policy())
    return Said(family, (scenario.duration - scenario.deploy_at) / 3600,
                sum(d.action == "rollback" for d in decisions),
                sum(d.verdict == "transient" for d in decisions))


def run_cutover(job: tuple[str, list[Scenario]]) -> tuple[Said, list[Decision]]:
    family, fleet = job
    events = heapq.merge(*(s.events() for s in fleet), key=lambda e: e.ts)
    decisions = replay_events(events, default_policy())
    healthy = {s.service for s in fleet if s.name == "healthy"}
    said = Said(family, sum((s.duration - s.deploy_at) / 3600 for s in fleet),
                sum(d.action == "rollback" and d.service in healthy for d in decisions),
                sum(d.verdict == "transient" for d in decisions),
                sum(d.verdict == "fleet" for d in decisions),
                sum(d.verdict == "held" for d in decisions))
    return said, decisions


def upper95(count: int, hours: float) -> float:
    """A 95 % upper bound of a Poisson rate per 10,000 h (exact for 0: -ln 0.05 = 3.0)."""
    if count == 0:
        return 10_000 * 3.0 / hours
    return 10_000 * (count + 1.645 * math.sqrt(count) + 1.5) / hours


def fleet_rows(results: list[Said]) -> list[str]:
    rows = ["| fleet | candidates | candidate hours | false rollbacks | false transients | "
            "per 10,000 h | 95 % bound |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for family in dict.fromkeys(r.family for r in results):
        group = [r for r in results if r.family == family]
        hours = sum(r.hours for r in group)
        transients = sum(r.transients for r in group)
        rows.append(f"| {family} | {len(group)} | {hours:.0f} | "
                    f"{sum(r.rollbacks for r in group)} | {transients} | "
                    f"{10_000 * transients / hours:.1f} | {upper95(transients, hours):.1f} |")
    return rows


def cutover_rows(results: list[tuple[Said, list[Decision]]]) -> list[str]:
    rows = ["| cutover fleets | fleets | healthy services rolled back | fleet alerts | "
            "held verdicts | lone regression rolled back |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for family in dict.fromkeys(s.family for s, _ in results):
        group = [(s, d) for s, d in results if s.family == family]
        lone = [any(x.action == "rollback" and x.service == "svc-0" for x in d)
                for _, d in group] if "regress" in family else []
        rows.append(f"| {family} | {len(group)} | {sum(s.rollbacks for s, _ in group)} | "
                    f"{sum(s.fleet_alerts for s, _ in group)} | "
                    f"{sum(s.held for s, _ in group)} | "
                    f"{f'{sum(lone)} of {len(lone)}' if lone else '-'} |")
    return rows


def regression_jobs(seeds: int) -> list[tuple[str, Scenario]]:
    """A 2x regression of the shocked metric beginning in the middle of a 10-minute 10x
    shock, and 10 minutes after one; canaries at 2 events/s beside 8/s of stable."""
    jobs = []
    for seed in range(seeds):
        for metric in ("error", "latency_ms", "hallucination", "cost_usd"):
            shock = Shock(metric, 1200.0, 600.0, 10.0)
            base = Scenario(seed, metric=metric, magnitude=2.0, duration=3600, shocks=(shock,))
            jobs.append(("regression begins during a shock", replace(base, onset=900.0)))
            jobs.append(("regression begins 10 min after a shock", replace(base, onset=1800.0)))
            jobs.append(("the same, no shock (the usual delay)",
                         replace(base, onset=1800.0, shocks=())))
    return jobs


def regression_rows(jobs: list[tuple[str, Scenario]], found: list[list[Decision]]) -> list[str]:
    rows = ["| regression | runs | rolled back | before its onset | median delay | worst delay |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for family in dict.fromkeys(f for f, _ in jobs):
        delays = []
        runs = early = 0
        for (f, scenario), decisions in zip(jobs, found, strict=True):
            if f != family:
                continue
            runs += 1
            onset = scenario.truth().onset or 0.0
            at = [d.ts for d in decisions if d.action == "rollback"]
            if at:
                delays.append(max(0.0, at[0] - onset) / 60)
                early += at[0] < onset
        med = f"{statistics.median(delays):.1f} min" if delays else "-"
        worst = f"{max(delays):.1f} min" if delays else "-"
        rows.append(f"| {family} | {runs} | {len(delays)} | {early} | {med} | {worst} |")
    return rows


def replay_one(job: tuple[str, Scenario]) -> list[Decision]:
    return replay_events(job[1].events(), default_policy())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fleets", type=int, default=2, help="seeds of each healthy fleet")
    parser.add_argument("--services", type=int, default=100, help="services per shock fleet")
    parser.add_argument("--bursts", type=int, default=1, help="seeds of the burst fleet")
    parser.add_argument("--cutovers", type=int, default=5, help="seeds of cutover fleets")
    parser.add_argument("--regressions", type=int, default=5, help="seeds of regressions")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    fleets = [("shock fleet, 0.1-50 ev/s, 2-20x, 1-20 min", s)
              for seed in range(args.fleets) for s in shock_fleet(seed, args.services)]
    fleets += [("burst fleet, +25 pp errors for 3 min", s)
               for seed in range(args.bursts) for s in burst_fleet(seed)]
    cutovers = [(f"12 services share a {m} x{f:g} shock", cutover_fleet(seed, 12, m, f))
                for seed in range(args.cutovers)
                for m, f in (("error", 10.0), ("latency_ms", 4.0))]
    cutovers += [("12 services share an error shock, svc-0 regresses after it",
                  cutover_fleet(seed, 12, "error", 10.0, regressed=0))
                 for seed in range(args.cutovers)]
    regressions = regression_jobs(args.regressions)
    with Pool(args.jobs) as pool:
        said = list(pool.imap_unordered(run_service, fleets, chunksize=4))
        fleet_results = list(pool.imap(run_cutover, cutovers))
        found = list(pool.imap(replay_one, regressions))
    print("\n".join(fleet_rows(said)))
    print()
    print("\n".join(cutover_rows(fleet_results)))
    print()
    print("\n".join(regression_rows(regressions, found)))
    print(f"\n{len(fleets)} services, {len(cutovers)} cutover fleets, {len(regressions)} "
          f"regressions, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
