"""Guarded rollouts, measured on the real decision core (the monitor and the ramp) over many
seeds: per step, the time a candidate as good as the stable takes to pass, against the oracle
(the best fixed-sample non-inferiority test at the same error rate that knows the traffic and
the truth, bench/oracle.py), and how often a candidate worse by 1.5x or 2x a tolerance passes.

    .venv/bin/python -m bench.rollout_quality [--seeds 140] [--explain-rate 40]

Traffic: 2 candidate events/s at every step beside 8/s of the stable (none at 100 %), the
default policy and plan. The pass chances put a worse candidate at each step alone, each
rollback metric worse in turn, and judge it by non-inferiority alone (its regressions only
alerted), to the step's limit; the whole rollouts of worse candidates use the policy as it is.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from datetime import date
from typing import Any

from bench.oracle import noninferiority_samples
from bench.scenarios import RolloutScenario, rollout_scenarios
from rollguard.analysis.explain_policy import _quantile as quantile
from rollguard.analysis.explain_policy import watched
from rollguard.analysis.explain_rollout import (
    RampRun,
    RolloutRuns,
    draws_of,
    explain_rollout,
    rollout_table,
    run_ramp,
    split,
)
from rollguard.detectors.policy import Policy, default_policy
from rollguard.detectors.rollout import gated_metrics


def whole(policy: Policy, scenarios: list[RolloutScenario]) -> list[RampRun]:
    """Each scenario's rollout from the first step to its end."""
    draws = draws_of(policy)
    return [run_ramp(policy, draws, s.traffic, s.shifts(), s.seed) for s in scenarios]


def step_passes(policy: Policy, magnitude: float, runs: int, seed: int) -> list[tuple[int, int]]:
    """Per step below 100 %: (passes, runs) of a candidate worse by ``magnitude`` tolerances on
    one metric (each in turn), put at that step alone and judged to the step's limit."""
    draws, gated = draws_of(policy), gated_metrics(policy)
    gate_only = watched(policy)
    out = []
    for index in range(len(policy.rollout.steps) - 1):
        passes = 0
        for s in rollout_scenarios(seed + 17 * index, runs, magnitude, gated):
            one = run_ramp(gate_only, draws, s.traffic, s.shifts(), s.seed, first_step=index,
                           one_step=True, window=policy.rollout.limit_seconds + 60.0,
                           gated=gated)
            passes += one.outcome == "passed"
        out.append((passes, runs))
    return out


def upper95(k: int, n: int) -> float:
    """One-sided 95 % upper bound of a binomial proportion (exact for 0: 1 - 0.05^(1/n))."""
    if k == 0:
        return 1 - 0.05 ** (1 / n)
    p = k / n
    return min(1.0, p + 1.645 * math.sqrt(p * (1 - p) / n) + 1 / n)


def quality(seeds: int) -> dict[str, Any]:
    policy = default_policy()
    plan, gated = policy.rollout, gated_metrics(policy)
    alpha = math.exp(-policy.evidence_threshold)
    equal = whole(policy, rollout_scenarios(1, seeds))
    worse = whole(policy, rollout_scenarios(2, seeds, 1.5, gated))
    oracle = {q: noninferiority_samples(gated, alpha, q) for q in (0.5, 0.9)}
    rate = RolloutScenario(0).rate
    rows = []
    passes = {m: step_passes(policy, m, seeds, 3 + int(10 * m)) for m in (1.5, 2.0)}
    steps = [*enumerate(plan.steps[:-1]), (None, None)]  # None: every step together
    for index, percent in steps:
        times = [t for r in equal for i, t in r.passed.items() if index in (None, i)]
        pooled = [passes[m] if index is None else [passes[m][index]] for m in (1.5, 2.0)]
        rows.append({"percent": percent, "passed": len(times),
                     "runs": len(equal) * (len(steps) - 1 if index is None else 1),
                     "median_s": quantile(times, 0.5), "p90_s": quantile(times, 0.9),
                     "oracle_median_s": oracle[0.5] / rate if oracle[0.5] else None,
                     "oracle_p90_s": oracle[0.9] / rate if oracle[0.9] else None,
                     "pass_1.5x": tuple(map(sum, zip(*pooled[0], strict=True))),
                     "pass_2x": tuple(map(sum, zip(*pooled[1], strict=True)))})
    return {"rows": rows, "alpha": alpha,
            "equal_stable": sum(r.outcome == "stable" for r in equal),
            "equal_to_stable_median_min": quantile([r.seconds / 60 for r in equal
                                                    if r.outcome == "stable"], 0.5),
            "equal_outcomes": _count([r.outcome for r in equal]),
            "worse_reached_100": sum(r.highest >= 100 for r in worse),
            "worse_outcomes": _count([r.outcome for r in worse]),
            "blind_advances": sum(r.blind_advance for r in equal + worse), "runs": seeds}


def _count(values: list[str]) -> dict[str, int]:
    return {v: values.count(v) for v in sorted(set(values))}


def table(result: dict[str, Any]) -> list[str]:
    lines = ["| step | equal candidate: passed | time to pass, median / p90 (s) | oracle, "
             "median / p90 (s) | ratio median / p90 | 1.5x tolerance passes (95 % bound) | "
             "2x passes |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in result["rows"]:
        med, p90, om, o90 = (row["median_s"], row["p90_s"], row["oracle_median_s"],
                             row["oracle_p90_s"])
        ratio = f"{med / om:.2f} / {p90 / o90:.2f}" if med and p90 and om and o90 else "n/a"
        k15, n15 = row["pass_1.5x"]
        k2, n2 = row["pass_2x"]
        step = "every step" if row["percent"] is None else f"{row['percent']:g} %"
        lines.append(f"| {step} | {row['passed']}/{row['runs']} | "
                     f"{_s(med)} / {_s(p90)} | {_s(om)} / {_s(o90)} | {ratio} | "
                     f"{k15}/{n15} ({upper95(k15, n15):.1%}) | {k2}/{n2} |")
    return lines


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def explain_lines(rate: float, runs: RolloutRuns) -> list[str]:
    found = explain_rollout(default_policy(), split(rate), runs)
    return rollout_table(found, f"{rate:g} events/s, the candidate on each step's share")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=140)
    parser.add_argument("--explain-rate", type=float, default=40.0)
    args = parser.parse_args()
    started = time.process_time()
    result = quality(args.seeds)
    took = time.process_time() - started
    print(f"{date.today()} {platform.machine()} ({args.seeds} seeds per row, "
          f"alpha = exp(-{-math.log(result['alpha']):g}) = {result['alpha']:.4f}, "
          f"{took:.0f} s CPU)")
    print("\n".join(table(result)))
    print(f"equal candidates: {result['equal_outcomes']}, to stable median "
          f"{result['equal_to_stable_median_min']:.0f} min; 1.5x candidates reached 100 %: "
          f"{result['worse_reached_100']}/{result['runs']} {result['worse_outcomes']}; "
          f"advances with a metric lacking data: {result['blind_advances']}")
    started = time.process_time()
    print("\n".join(explain_lines(args.explain_rate, RolloutRuns(8, 7))))
    print(f"({time.process_time() - started:.0f} s CPU)")


if __name__ == "__main__":
    main()
