"""Detection quality over many seeds: the default policy against two reference deciders.

Run: ``python -m bench.detection_quality [--seeds N] [--jobs 2]``. Prints a markdown table:
per scenario family, false rollbacks (a rollback where none is due, or while the shift was
still at most half the tolerance),
missed regressions (no rollback at all), late ones (after 8 min at >= 2 ev/s, 25 min at
0.5 ev/s), and the median and worst delay from the onset (from where a creep reaches 2x).
With ``--fleets N``: N seeds of healthy fleets (:func:`bench.scenarios.healthy_fleet`), and
their false alerts per 1,000 candidate service-hours by traffic level and metric.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from multiprocessing import Pool

from bench.oracle import median_delay, rejections
from bench.reference import ArgoStyle, FixedRule
from bench.scenarios import METRICS, Scenario, dirty, healthy_fleet, to_lines, variant
from rollguard.analysis.replay import Replay, replay_events
from rollguard.detectors.events import Event
from rollguard.detectors.policy import default_policy

DECIDERS = ("default policy", FixedRule.name, ArgoStyle.name)


def families(seeds: int) -> dict[str, list[Scenario]]:
    """Scenario families of the acceptance criteria, each over ``seeds`` seeds."""
    out: dict[str, list[Scenario]] = {}

    def add(name: str, make: Callable[[int, str], Scenario], metrics: tuple[str, ...] = METRICS,
            ) -> None:
        out[name] = [make(seed, m) for m in metrics for seed in range(seeds)]

    hour = 3600.0
    add("sustained 2x, 2 ev/s", lambda s, m: Scenario(s, metric=m, magnitude=2.0,
                                                       duration=1800))
    add("sustained 2x, 0.5 ev/s", lambda s, m: Scenario(s, rate=0.5, metric=m, magnitude=2.0,
                                                         duration=3000))
    add("sustained 4x, 2 ev/s", lambda s, m: Scenario(s, metric=m, magnitude=4.0,
                                                       duration=1500))
    add("late onset 2x (40 min), 2 ev/s", lambda s, m: Scenario(
        s, metric=m, magnitude=2.0, onset=2400, duration=4200))
    add("creep to 3x over 10 min, 2 ev/s", lambda s, m: Scenario(
        s, metric=m, magnitude=3.0, creep=600, duration=2400))
    add("full cutover 2x (history baseline)", lambda s, m: Scenario(
        s, mode="cutover", metric=m, magnitude=2.0, duration=1800))
    add("half tolerance, 2 ev/s", lambda s, m: Scenario(s, metric=m, magnitude=0.5,
                                                         duration=hour))
    add("half tolerance, 0.5 ev/s", lambda s, m: Scenario(s, rate=0.5, metric=m,
                                                           magnitude=0.5, duration=hour))
    add("2-min blip 10x", lambda s, m: Scenario(s, metric=m, magnitude=10.0, blip=120,
                                                 onset=600, duration=2400))
    add("two 2-min blips 10x, 1 h apart", lambda s, m: Scenario(
        s, metric=m, magnitude=10.0, blip=120, onset=300, blips=(3900,), duration=5400))
    add("low traffic noise (0.2 ev/s)", lambda s, m: Scenario(s, rate=0.2, duration=hour),
        ("none",))
    add("heavy-tailed latency", lambda s, m: Scenario(s, heavy_tails=True, duration=hour),
        ("none",))
    add("load rises and falls", lambda s, m: Scenario(s, load_swing=True, rate=1.0,
                                                       duration=2 * hour), ("none",))
    return out


@dataclass
class Outcome:
    family: str
    metric: str | None
    decider: str
    expect: str
    rollback_at: float | None
    onset: float | None
    deadline: float | None
    earliest: float | None
    oracle: list[float] | None = None  # horizons at which the oracle's test rejects


def _policy_rollback(events: list[Event], lines: list[bytes] | None) -> float | None:
    replay = Replay(default_policy())
    if lines is None:
        for e in events:
            replay.feed(e)
    else:
        replay.feed_lines(lines)
    replay.finish()
    firsts = [d.ts for d in replay.decisions if d.action == "rollback"]
    return firsts[0] if firsts else None


def run_one(job: tuple[str, Scenario, bool]) -> list[Outcome]:
    family, scenario, with_dirty = job
    events = list(scenario.events())
    truth = scenario.truth()
    lines = dirty(to_lines(events), scenario.seed) if with_dirty else None
    results = {
        DECIDERS[0]: _policy_rollback(events, lines),
        DECIDERS[1]: FixedRule().decide(events),
        DECIDERS[2]: ArgoStyle().decide(events),
    }
    # The oracle bound (bench/oracle.py): for regressions with a fixed onset, on clean data.
    oracle = (rejections(scenario) if truth.expect == "rollback" and not scenario.creep
              and not with_dirty else None)
    return [Outcome(family, scenario.metric, name, truth.expect, at, truth.onset, truth.deadline,
                    truth.earliest, oracle if name == DECIDERS[0] else None)
            for name, at in results.items()]


def table(outcomes: list[Outcome], by_metric: bool = False) -> list[str]:
    first = "| scenario | metric |" if by_metric else "| scenario | decider |"
    rows = [f"{first} runs | false rollbacks | missed | late | median delay | worst delay |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    keys = list(dict.fromkeys((o.family, o.metric if by_metric else o.decider)
                              for o in outcomes))
    for family, second in keys:
        group = [o for o in outcomes if o.family == family
                 and (o.metric if by_metric else o.decider) == second]
        false = sum(1 for o in group if o.rollback_at is not None and (
            o.expect == "no_rollback" or (o.earliest is not None and o.rollback_at < o.earliest)))
        due = [o for o in group if o.expect == "rollback"]
        missed = sum(1 for o in due if o.rollback_at is None)
        # A rollback while a creep is between 0.5x and 2x the tolerance counts as no delay.
        delays = [max(0.0, o.rollback_at - o.onset) / 60 for o in due
                  if o.rollback_at is not None and o.onset is not None
                  and o.earliest is not None and o.rollback_at >= o.earliest]
        late = sum(1 for o in due if o.rollback_at is not None and o.deadline is not None
                   and o.rollback_at > o.deadline)
        med = f"{statistics.median(delays):.1f} min" if delays else "-"
        worst = f"{max(delays):.1f} min" if delays else "-"
        if not due:
            late_text = med = worst = "-"
            missed_text = "-"
        else:
            late_text, missed_text = str(late), str(missed)
        rows.append(f"| {family} | {second} | {len(group)} | {false} | {missed_text} | "
                    f"{late_text} | {med} | {worst} |")
    return rows


def oracle_table(outcomes: list[Outcome]) -> list[str]:
    """The default policy's median delay beside the oracle's, per family and metric. Both
    medians count a miss as later than any delay."""
    rows = ["| scenario | metric | runs | median delay | oracle | ratio | why, where > 1.3 |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    mine = [o for o in outcomes if o.oracle is not None]
    for family, metric in dict.fromkeys((o.family, o.metric) for o in mine):
        group = [o for o in mine if o.family == family and o.metric == metric]
        ours = sorted(math.inf if o.rollback_at is None or o.onset is None
                      else max(0.0, o.rollback_at - o.onset) / 60 for o in group)
        median = ours[(len(ours) - 1) // 2]
        bound = median_delay([o.oracle or [] for o in group])
        ratio = median / bound if bound and median < math.inf else None
        ours_text = f"{median:.1f} min" if median < math.inf else "missed in half"
        rows.append(f"| {family} | {metric} | {len(group)} | {ours_text} | "
                    f"{'missed in half' if bound is None else f'{bound:.1f} min'} | "
                    f"{'-' if ratio is None else f'{ratio:.2f}'} | "
                    f"{why(str(metric), family, ratio)} |")
    return rows


def why(metric: str, family: str, ratio: float | None) -> str:
    """Why the default policy is more than 1.3x the oracle's median delay, if it is."""
    if ratio is None:
        return ("too little information within the scenario: a rare event's rate at 0.5 "
                "ev/s (the oracle needs 35 min or more as well)")
    if ratio <= 1.3:
        return ""
    if metric == "latency_ms":
        return ("p95 read from histogram bins 8 % wide: H0's exceedance is taken from the "
                "whole bin holding it (an upper bound, kept for the false-alarm guarantee); "
                "the oracle knows the true p95")
    if "cutover" in family:
        return ("baseline is the stable's frozen history, 1 SE of margin on its estimate; "
                "the oracle knows the true level")
    return ("at 0.25-0.5 samples/s a bucket holds a sample or two: the monitor's blip "
            "window and last-minute check cost a larger share of the evidence, and it "
            "tests every 10 s without knowing the onset; the oracle tests once")


# Healthy fleets: (services, lowest and highest events/s of a service) per fleet seed.
FLEETS = {"quiet fleet, 0.2-2 ev/s": (300, 0.2, 2.0), "busy fleet, 2-20 ev/s": (30, 2.0, 20.0)}
BANDS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)


@dataclass
class Alerts:
    """What the default policy said about one healthy service's candidate."""

    fleet: str
    rate: float  # the service's events/s (candidate: half of it)
    hours: float  # candidate hours watched
    transient: list[str]  # metric of each transient alert
    inconclusive: int
    rollbacks: int


def run_fleet_service(job: tuple[str, Scenario]) -> Alerts:
    fleet, scenario = job
    decisions = replay_events(scenario.events(), default_policy())
    return Alerts(fleet, 2 * scenario.rate, (scenario.duration - scenario.deploy_at) / 3600,
                  [d.evidence.get("metric", "") for d in decisions if d.verdict == "transient"],
                  sum(d.verdict == "inconclusive" for d in decisions),
                  sum(d.action == "rollback" for d in decisions))


def fleet_table(results: list[Alerts]) -> list[str]:
    """False alerts per 1,000 candidate service-hours, by fleet and traffic band."""
    rows = ["| fleet | events/s | services | candidate hours | false rollbacks | transient "
            "alerts | per 1,000 h | by metric | inconclusive notices | per 1,000 h |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for fleet in dict.fromkeys(r.fleet for r in results):
        for low, high in pairwise(BANDS):
            group = [r for r in results if r.fleet == fleet and low <= r.rate < high]
            if not group:
                continue
            hours = sum(r.hours for r in group)
            transient = [m for r in group for m in r.transient]
            notices = sum(r.inconclusive for r in group)
            by_metric = ", ".join(f"{m} {transient.count(m)}" for m in sorted(set(transient)))
            rows.append(f"| {fleet} | {low:g}-{high:g} | {len(group)} | {hours:.0f} | "
                        f"{sum(r.rollbacks for r in group)} | {len(transient)} | "
                        f"{1000 * len(transient) / hours:.1f} | {by_metric or '-'} | {notices} | "
                        f"{1000 * notices / hours:.0f} |")
    return rows


def fleet_jobs(seeds: range) -> list[tuple[str, Scenario]]:
    return [(name, scenario) for name, (services, low, high) in FLEETS.items()
            for seed in seeds for scenario in healthy_fleet(seed, services, low, high)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default="", help="run families whose name contains this "
                        "(comma-separated: any of these)")
    parser.add_argument("--metrics", default="",
                        help="comma-separated degraded metrics to run ('none': the healthy "
                             "families without a degraded metric); default all")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--fleets", type=int, default=0,
                        help="also run this many seeds of each healthy fleet (false alerts)")
    args = parser.parse_args(argv)
    wanted = set(args.metrics.split(",")) if args.metrics else None

    def keep(sc: Scenario) -> bool:
        return wanted is None or (sc.metric or "none") in wanted

    jobs = [(name, variant(sc, seed=sc.seed + args.first_seed), False)
            for name, group in families(args.seeds).items()
            if any(part in name for part in args.only.split(","))
            for sc in group if keep(sc)]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if (not args.only or "dirty" in args.only) and (wanted is None or "hallucination" in wanted):
        jobs += [("dirty input: sustained 2x hallucination", Scenario(
            s, metric="hallucination", magnitude=2.0, duration=1800), True)
            for s in seeds]
        jobs += [("dirty input: no regression", Scenario(s, duration=1800), True)
                 for s in seeds]
    started = time.perf_counter()
    with Pool(args.jobs) as pool:
        outcomes = [o for chunk in pool.imap(run_one, jobs, chunksize=4) for o in chunk]
        fleets = fleet_jobs(range(args.first_seed, args.first_seed + args.fleets))
        alerts = list(pool.imap(run_fleet_service, fleets, chunksize=8))
    if outcomes:
        print("\n".join(table(outcomes)))
        mine = [o for o in outcomes if o.decider == DECIDERS[0] and o.expect == "rollback"
                and o.metric is not None]
        print("\nDefault policy by metric (regression scenarios):\n")
        print("\n".join(table(mine, by_metric=True)))
        print("\nDefault policy beside the oracle bound (bench/oracle.py):\n")
        print("\n".join(oracle_table(outcomes)))
    if alerts:
        print("\nHealthy fleets, false alerts of the default policy:\n")
        print("\n".join(fleet_table(alerts)))
    print(f"\n{len(jobs) + len(fleets)} scenario runs, {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
