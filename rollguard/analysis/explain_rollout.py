"""What a guarded rollout does at a given traffic, measured by running the decision core — the
service monitor and the ramp (:mod:`detectors.rollout`) — on simulated events.

A stable release serves alone for 10 minutes, then the candidate is taken through the plan's
steps. Events go to the real :class:`~rollguard.detectors.monitor.ServiceMonitor` a block per
release and 10-second bucket, drawn as ``rollguard policy explain`` draws them
(:func:`~rollguard.analysis.explain_policy.drawer`); each closed bucket's readings and
regressions go to the :class:`~rollguard.detectors.rollout.Ramp`. A person approves at once
wherever the plan asks. Everything is seeded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rollguard.analysis.explain_policy import (
    BASES,
    START,
    WARMUP,
    Draw,
    _quantile,
    drawer,
    watched,
)
from rollguard.detectors.blocks import Block
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.policy import Policy
from rollguard.detectors.rollout import Ramp, RampAction, RampVerdict, gated_metrics

Traffic = Callable[[float], tuple[float, float]]
"""A step's percent -> (candidate, stable) events/s; at 0 %: the stable before the rollout."""

SHIFTS = (1.5, 2.0)  # candidates worse by this many tolerances, in the pass chances


def split(total: float) -> Traffic:
    """A service of ``total`` events/s, the candidate on the step's share of it.

    >>> split(20.0)(5.0)
    (1.0, 19.0)
    """
    return lambda percent: (total * percent / 100, total * (1 - percent / 100))


def per_step(rate: float, stable_rate: float) -> Traffic:
    """``rate`` candidate events/s at every step beside ``stable_rate`` of the stable, which
    serves nothing at 100 % (its history is the baseline there).

    >>> per_step(2.0, 8.0)(0.0), per_step(2.0, 8.0)(25.0), per_step(2.0, 8.0)(100.0)
    ((0.0, 8.0), (2.0, 8.0), (2.0, 0.0))
    """
    return lambda percent: (rate if percent > 0 else 0.0, stable_rate if percent < 100 else 0.0)


@dataclass
class RampRun:
    """One simulated rollout: per step (by index), seconds from its start to its pass (None:
    not passed); how it ended (``stable``, ``abort``, ``pause``, ``limit``: a lone step run to
    its limit, ``window``: still going when the simulation ended), and when (seconds after the
    candidate arrived); whether a step passed with a metric that had no data."""

    passed: dict[int, float] = field(default_factory=dict)
    outcome: str = "window"
    seconds: float = 0.0
    highest: float = 0.0
    blind_advance: bool = False
    verdicts: list[tuple[float, str, float, str]] = field(default_factory=list)


def draws_of(policy: Policy, bases: Mapping[str, float] | None = None) -> dict[str, Draw]:
    """Each metric's value drawer at its healthy level (the standard ones by default)."""
    levels = {**BASES, **(bases or {})}
    return {name: drawer(rule, levels[name]) for name, rule in policy.metrics.items()}


def _blocks(rng: np.random.Generator, draws: Mapping[str, Draw], t0: float, width: float,
            rates: tuple[float, float], shifts: Mapping[str, float],
            serial: int) -> tuple[list[Block], int]:
    blocks = []
    for release, rate, worse in (("stable", rates[1], False), ("candidate", rates[0], True)):
        n = int(rng.poisson(rate * width))
        if not n:
            continue
        columns = {name: draw(rng, n, shifts.get(name, 0.0) if worse else 0.0)
                   for name, draw in draws.items()}
        ids = [str(k) for k in range(serial, serial + n)]
        serial += n
        ts = [t0 + width * (k + 0.5) / n for k in range(n)]
        blocks.append(Block("rollout", release, "", ids, ts, columns, columns,
                            frozenset(columns)))
    return blocks, serial


def run_ramp(policy: Policy, draws: Mapping[str, Draw], traffic: Traffic,
             shifts: Mapping[str, float], seed: int, *, first_step: int = 0,
             one_step: bool = False, window: float = 12 * 3600.0,
             gated: Sequence[str] | None = None) -> RampRun:
    """Take a candidate worse by ``shifts`` tolerances (per metric) through the policy's
    rollout plan from step ``first_step`` (``one_step``: that step alone, to its pass or its
    limit), for at most ``window`` seconds; ``gated``: the metrics a step needs evidence of
    (default: those whose rule could roll back)."""
    rng = np.random.default_rng(seed)
    monitor = ServiceMonitor("rollout", policy)
    monitor.set_roles("stable", "candidate")
    width = policy.bucket_seconds
    deploy = START + WARMUP
    ramp = Ramp(policy.rollout, gated_metrics(policy) if gated is None else gated,
                policy.evidence_threshold, deploy)
    ramp.step = first_step
    run, serial = RampRun(highest=ramp.percent), 0
    for i in range(int((WARMUP + window) // width) + 1):
        t0 = START + i * width
        live = t0 >= deploy
        rates = traffic(ramp.percent) if live else (0.0, traffic(0.0)[1])
        blocks, serial = _blocks(rng, draws, t0, width, rates, shifts, serial)
        for block in blocks:
            monitor.observe_block(block)
        if not live:
            monitor.drain_ramp()
            continue
        monitor.measure_ramp = True
        for bucket in monitor.drain_ramp():
            verdict = ramp.observe_bucket(bucket)
            if verdict.action == RampAction.AWAIT_APPROVAL and verdict.to_percent is not None:
                verdict = ramp.approve(bucket.ts, verdict.to_percent, "explain")
            if _record(run, ramp, verdict, bucket.ts, deploy, one_step):
                return run
    run.seconds = window
    return run


def _record(run: RampRun, ramp: Ramp, verdict: RampVerdict, ts: float, deploy: float,
            one_step: bool) -> bool:
    """Note a verdict (of the bucket closed at ``ts``) in ``run``; True when the run is over."""
    at = ts - deploy
    if verdict.announce:
        run.verdicts.append((at, str(verdict.action), verdict.percent, verdict.reason))
    action = verdict.action
    if action == RampAction.ADVANCE:
        step = verdict.step - 2
        run.passed[step] = float(verdict.evidence.get("seconds_at_step", 0.0))
        metrics = verdict.evidence.get("metrics", {})
        run.blind_advance |= any(metrics.get(n, {}).get("samples", 0) == 0 for n in ramp.gated)
        run.highest = verdict.percent
    ended = {RampAction.STABLE: "stable", RampAction.ABORT: "abort", RampAction.PAUSE: "pause"}
    if action in ended:
        run.outcome, run.seconds = ended[action], at
        return True
    if one_step and (action == RampAction.ADVANCE or ts - ramp.since >= ramp.plan.limit_seconds):
        run.outcome, run.seconds = ("passed" if action == RampAction.ADVANCE else "limit"), at
        return True
    return False


@dataclass(frozen=True)
class RolloutRuns:
    """How many simulated rollouts the figures rest on."""

    equal_runs: int = 16  # whole rollouts of a candidate as good as the stable
    step_runs: int = 14  # per step and shift: a worse candidate at that step alone
    seed: int = 0


def explain_rollout(policy: Policy, traffic: Traffic, runs: RolloutRuns = RolloutRuns(),
                    bases: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Per step: minutes to pass for a candidate as good as the stable (median, 90th
    percentile) and the chance that a candidate worse by 1.5x and 2x the tolerance of one
    metric (each metric in turn) passes it, judged by non-inferiority alone (its regressions
    only alerted, so that the figure is the gate's own); and the time to 100 % and to stable."""
    draws = draws_of(policy, bases)
    plan = policy.rollout
    seed = runs.seed * 1_000_003
    whole = [run_ramp(policy, draws, traffic, {}, seed + k) for k in range(runs.equal_runs)]
    gate_only = watched(policy)
    gated = gated_metrics(policy)
    steps: list[dict[str, Any]] = []
    for index, percent in enumerate(plan.steps[:-1]):
        times = [r.passed[index] / 60 for r in whole if index in r.passed]
        row: dict[str, Any] = {"percent": percent, "median_min": _quantile(times, 0.5),
                               "p90_min": _quantile(times, 0.9), "passed": len(times),
                               "runs": len(whole)}
        for shift in SHIFTS:
            passes = 0
            for k in range(runs.step_runs):
                worse = {gated[k % len(gated)]: shift}
                one = run_ramp(gate_only, draws, traffic, worse, seed + 7919 * (index + 1) + k,
                               first_step=index, one_step=True,
                               window=plan.limit_seconds + 60.0, gated=gated)
                passes += one.outcome == "passed"
            row[f"{shift:g}x"] = {"passed": passes, "runs": runs.step_runs}
        steps.append(row)
    stable = [r.seconds / 60 for r in whole if r.outcome == "stable"]
    full = [_at_full(r) for r in whole]
    return {"steps": steps, "stable": len(stable), "runs": len(whole),
            "to_100_median_min": _quantile(full, 0.5), "to_100_p90_min": _quantile(full, 0.9),
            "to_stable_median_min": _quantile(stable, 0.5),
            "to_stable_p90_min": _quantile(stable, 0.9),
            "blind_advances": sum(r.blind_advance for r in whole)}


def _at_full(run: RampRun) -> float | None:
    """Minutes from the candidate's arrival to its move to 100 % (None: not moved there)."""
    return next((at / 60 for at, action, percent, _ in run.verdicts
                 if action == RampAction.ADVANCE and percent >= 100), None)


def rollout_table(found: Mapping[str, Any], traffic_text: str) -> list[str]:
    """The readable form of :func:`explain_rollout`'s figures (for ``rollguard policy
    explain``; ``traffic_text`` says at what traffic, e.g. ``40 events/s``)."""
    def minutes(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    lines = [f"guarded rollout at {traffic_text}: {found['stable']} of {found['runs']} "
             f"candidates as good as the stable became stable, in "
             f"{minutes(found['to_stable_median_min'])} min (median; 90th percentile "
             f"{minutes(found['to_stable_p90_min'])}); at 100 % in "
             f"{minutes(found['to_100_median_min'])} min (median; 90th percentile "
             f"{minutes(found['to_100_p90_min'])})",
             "| step | minutes to pass, median / p90 | passes, 1.5x tolerance worse | "
             "2x worse |", "| --- | ---: | ---: | ---: |"]
    for row in found["steps"]:
        worse = [f"{row[k]['passed']}/{row[k]['runs']}" for k in ("1.5x", "2x")]
        lines.append(f"| {row['percent']:g} % | {minutes(row['median_min'])} / "
                     f"{minutes(row['p90_min'])} | {worse[0]} | {worse[1]} |")
    return lines
