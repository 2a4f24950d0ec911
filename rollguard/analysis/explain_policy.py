"""What a policy does at a given traffic, measured by running the decision core on simulated
events (``rollguard policy explain``).

Each metric is judged on its own (no composites; every action a dry run, so that a verdict
on one metric does not end the others' runs), so that each figure is that metric's own: a
stable release serves alone for 10 minutes, then a candidate takes ``share`` of the traffic,
every metric worse by the same number of tolerances. Events go to the real
:class:`~rollguard.detectors.monitor.ServiceMonitor` a block per release and 10-second bucket (the
shortcut that keeps a run to milliseconds: the monitor decides exactly as it would event by
event). Everything is seeded; the output says how many runs each figure rests on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rollguard.detectors.blocks import Block
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.policy import MetricRule, Policy, RuleAction

SHIFTS = (1.5, 2.0, 4.0)  # sustained shifts, in tolerances
WARMUP = 600.0  # seconds of stable traffic before the candidate arrives
WINDOW = 3600.0  # how long a candidate is watched for one run
LOWEST, HIGHEST = 2.0 ** -6, 2.0 ** 12  # the traffic levels tried (events/s)
START = 1_790_000_000.0
# Healthy level of the standard metrics (rates: share of 1s; quantiles: the median).
BASES = {"hallucination": 0.03, "toxicity": 0.005, "accuracy": 0.88, "latency_ms": 600.0,
         "error": 0.005, "complaint": 0.003, "cost_usd": 0.002}
# Spread of the continuous ones: ("normal", sd) or ("lognormal", sigma).
SPREADS = {"accuracy": ("normal", 0.08), "latency_ms": ("lognormal", 0.5),
           "cost_usd": ("lognormal", 0.3)}

Draw = Callable[[np.random.Generator, int, float], list[float]]


@dataclass(frozen=True)
class Runs:
    """How many simulated runs the figures rest on."""

    shift_runs: int = 8  # runs per shift (each judges every metric)
    healthy_hours: float = 2.0  # candidate hours at no shift
    level_runs: int = 3  # runs per traffic level when looking for the lowest one
    seed: int = 0


@dataclass
class MetricReport:
    metric: str
    base: float
    minutes: dict[float, list[float | None]] = field(default_factory=dict)  # per shift
    false_rollbacks: int = 0
    healthy_days: float = 0.0
    lowest_rate: float | None = None  # events/s at which a 2x shift is judged within 1 h

    def to_dict(self) -> dict[str, Any]:
        shifts = {f"{k:g}x": {"median_min": _quantile(v, 0.5), "p90_min": _quantile(v, 0.9),
                              "runs": len(v), "caught": sum(x is not None for x in v)}
                  for k, v in self.minutes.items()}
        per_1000 = 1000 * self.false_rollbacks / self.healthy_days if self.healthy_days else None
        return {"metric": self.metric, "base": self.base, "shifts": shifts,
                "false_rollbacks": self.false_rollbacks, "healthy_days": self.healthy_days,
                "false_rollbacks_per_1000_days": per_1000,
                "false_rollbacks_per_1000_days_95pct_upper": _upper(self.false_rollbacks,
                                                                    self.healthy_days),
                "lowest_events_per_s_judged_within_1h": self.lowest_rate}


def _quantile(values: Sequence[float | None], q: float) -> float | None:
    """The q-quantile of delays in minutes, a miss counting as longer than any; None when
    that quantile is a miss (not caught within the window)."""
    ordered = sorted(values, key=lambda v: math.inf if v is None else v)
    if not ordered:
        return None
    value = ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]
    return None if value is None else round(value, 1)


def _upper(events: int, days: float) -> float | None:
    # One-sided 95 % upper bound of a Poisson rate per 1,000 days (exact for 0: -ln 0.05).
    if not days:
        return None
    bound = {0: 3.0, 1: 4.74, 2: 6.3, 3: 7.75}.get(events, events + 2 * math.sqrt(events) + 2)
    return round(1000 * bound / days, 1)


def drawer(rule: MetricRule, base: float) -> Draw:
    """Values of ``rule``'s metric at ``base``, worse by ``shift`` x its tolerance."""
    tol = rule.tolerance * (abs(base) if rule.relative else 1.0)
    sign = rule.sign
    if rule.statistic in ("rate", "share"):
        hit, miss = (1.0, 0.0) if rule.statistic == "rate" else (
            rule.threshold, rule.threshold - 1.0)

        def flags(rng: np.random.Generator, n: int, shift: float) -> list[float]:
            p = min(max(base + sign * shift * tol, 0.0), 1.0)
            return np.where(rng.random(n) < p, hit, miss).tolist()
        return flags
    kind, spread = SPREADS.get(rule.name, ("lognormal", 0.3) if rule.relative or
                               rule.statistic == "quantile" else ("normal", 8 * tol / 3))
    if kind == "normal":
        def normal(rng: np.random.Generator, n: int, shift: float) -> list[float]:
            return rng.normal(base + sign * shift * tol, spread, n).tolist()
        return normal

    def lognormal(rng: np.random.Generator, n: int, shift: float) -> list[float]:
        scale = base * (1 + sign * shift * rule.tolerance) if rule.relative else base
        # A mean metric's lognormal is centred on its mean, a quantile's on its median.
        centre = -spread * spread / 2 if rule.statistic == "mean" else 0.0
        values = scale * np.exp(rng.normal(centre, spread, n))
        return (values if rule.relative else values + sign * shift * tol).tolist()
    return lognormal


def watched(policy: Policy) -> Policy:
    """The policy without composites, every action a dry run: each metric is judged on its
    own, and a verdict on one does not end the candidate for the others."""
    metrics = {name: replace(rule, action=RuleAction.DRY_RUN, critical=True)
               for name, rule in policy.metrics.items()}
    return replace(policy, metrics=metrics, composites=())


def run(policy: Policy, draws: Mapping[str, Draw], rate: float, share: float, shift: float,
        seed: int, window: float = WINDOW, wanted: set[str] | None = None,
        warmup: float = WARMUP) -> dict[str, float | None]:
    """Minutes from the candidate's arrival to each metric's sustained verdict (None: none
    within ``window``), every metric of the candidate worse by ``shift`` tolerances, after
    ``warmup`` seconds of the stable alone. The run ends early once every ``wanted`` metric
    (default: all) has its verdict."""
    rng = np.random.default_rng(seed)
    monitor = ServiceMonitor("explain", policy)
    monitor.set_roles("stable", "candidate")
    width = policy.bucket_seconds
    found: dict[str, float | None] = dict.fromkeys(policy.metrics)
    left = set(policy.metrics if wanted is None else wanted)
    serial = 0
    for i in range(int((warmup + window) // width) + 1):
        t0 = START + i * width
        deployed = i * width >= warmup
        for release, r, worse in (("stable", rate * (1 - share) if deployed else rate, 0.0),
                                  ("candidate", rate * share, shift)):
            n = int(rng.poisson(r * width)) if release == "stable" or deployed else 0
            if not n:
                continue
            columns = {name: draw(rng, n, worse) for name, draw in draws.items()}
            ids = [str(k) for k in range(serial, serial + n)]
            serial += n
            ts = [t0 + width * (k + 0.5) / n for k in range(n)]
            block = Block("explain", release, "", ids, ts, columns, columns,
                          frozenset(columns))
            for decision in monitor.observe_block(block):
                if decision.verdict == "sustained":
                    name = decision.evidence["metric"]
                    found[name] = (decision.ts - START - warmup) / 60
                    left.discard(name)
            if not left:
                return found
    return found


def explain(policy: Policy, rate: float, share: float, bases: Mapping[str, float],
            runs: Runs = Runs()) -> list[MetricReport]:
    """Per metric: delays at each of :data:`SHIFTS`, false rollbacks at no shift, and the
    lowest traffic at which a 2x shift is judged within an hour."""
    judged = watched(policy)
    draws = {name: drawer(rule, bases[name]) for name, rule in policy.metrics.items()}
    reports = {name: MetricReport(name, bases[name]) for name in policy.metrics}
    seed = runs.seed * 1_000_003
    for shift in SHIFTS:
        found = [run(judged, draws, rate, share, shift, seed + k)
                 for k in range(runs.shift_runs)]
        for name, report in reports.items():
            report.minutes[shift] = [f[name] for f in found]
    hours = max(1, round(runs.healthy_hours))
    for k in range(hours):
        for name, at in run(judged, draws, rate, share, 0.0, seed + 5000 + k).items():
            reports[name].false_rollbacks += at is not None
    at_rate = {name for name, r in reports.items() if None not in r.minutes[2.0]}
    levels = lowest_rates(judged, draws, rate, share, runs, seed + 9000, at_rate)
    for name, level in levels.items():
        reports[name].healthy_days = hours / 24
        reports[name].lowest_rate = level
    return list(reports.values())


def lowest_rates(policy: Policy, draws: Mapping[str, Draw], rate: float, share: float,
                 runs: Runs, seed: int, at_rate: set[str]) -> dict[str, float | None]:
    """Per metric, the lowest traffic on the grid of powers of 2 (events/s, from 1/64 to
    4096) at which a 2x shift is judged within an hour in every one of ``runs.level_runs``
    runs (None: not even at 4096). ``at_rate``: the metrics the 2x runs judged so at
    ``rate`` itself (used when ``rate`` is on the grid)."""
    def judged(level: float, among: set[str]) -> set[str]:
        alive = set(among)
        for k in range(runs.level_runs):
            if not alive:
                break
            found = run(policy, draws, level, share, 2.0, seed + k, wanted=alive)
            alive = {name for name in alive if found[name] is not None}
        return alive

    everything = set(policy.metrics)
    start = 2.0 ** round(math.log2(rate))
    ok = at_rate if start == rate else judged(start, everything)
    lowest: dict[str, float | None] = dict.fromkeys(policy.metrics)
    level, alive = start, set(ok)
    for name in alive:
        lowest[name] = level
    while alive and level / 2 >= LOWEST:  # down, while some metric is still judged
        level /= 2
        alive = judged(level, alive)
        for name in alive:
            lowest[name] = level
    level, rest = start, everything - ok
    while rest and level * 2 <= HIGHEST:
        level *= 2
        got = judged(level, rest)
        for name in got:
            lowest[name] = level
        rest -= got
    return lowest


def explain_table(policy: Policy, head: Mapping[str, Any],
                  metrics: list[dict[str, Any]]) -> list[str]:
    """The readable form of :func:`explain`'s figures (``rollguard policy explain``)."""
    from rollguard.detectors.explain import describe, tolerance_text

    rate, share = head["events_per_s"], head["share"]
    lines = [
        f"policy {policy.name!r} at {rate:g} events/s, the candidate on {share:.0%} of it "
        f"({rate * share:.3g} events/s beside {rate * (1 - share):.3g} on the stable)",
        f"measured by the decision core on simulated events, each metric judged on its own "
        f"(no composites), seed {head['seed']}: {head['runs_per_shift']} runs per shift, "
        f"{head['healthy_candidate_hours']} candidate-hours at no shift, "
        f"{head['runs_per_traffic_level']} runs per traffic level "
        f"({head['cpu_seconds']:g} s of CPU)",
        "minutes from the candidate's arrival to a rollback, median / 90th percentile "
        f"(>{WINDOW / 60:.0f}: not within the hour watched)", "",
        "| metric | healthy | tolerance | 1.5x tolerance | 2x | 4x | false rollbacks per "
        "1,000 candidate-days (no shift) | judged within 1 h from |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for m in metrics:
        rule = policy.metrics[m["metric"]]
        delays = [_delays(m["shifts"][f"{k:g}x"]) for k in SHIFTS]
        upper = m["false_rollbacks_per_1000_days_95pct_upper"]
        false = (f"{m['false_rollbacks_per_1000_days']:.0f} ({m['false_rollbacks']} in "
                 f"{m['healthy_days'] * 24:.0f} h; 95 % bound {upper:,.0f})")
        lowest = m["lowest_events_per_s_judged_within_1h"]
        judged = f"{lowest:.3g} events/s" if lowest is not None else f"> {HIGHEST:g} events/s"
        lines.append(f"| {describe(rule)} | {m['base']:g} | {tolerance_text(rule)} | "
                     f"{' | '.join(delays)} | {false} | {judged} |")
    return lines


def _delays(shift: Mapping[str, Any]) -> str:
    def text(value: float | None) -> str:
        return f">{WINDOW / 60:.0f}" if value is None else f"{value:g}"
    return f"{text(shift['median_min'])} / {text(shift['p90_min'])}"
