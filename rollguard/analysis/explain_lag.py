"""How the lag of evaluation results changes the time to a rollback (``rollguard policy
explain``), measured by running the decision core on simulated traffic.

Each output's fast metrics (latency, errors, cost: what a span gives) reach the worker when
the output is served; its evaluation metrics come from judges ``lag`` seconds later, in
batches a minute apart (a batch holds the results of the outputs served up to ``lag``
before it). Every metric of the candidate is worse by 2x its tolerance from its arrival;
the figure is the time from the candidate's arrival to the verdict *as the worker reaches
it*, per evaluation metric: with the policy's evaluation lane, and on one clock (no lane),
where the spans move the service's time and results further behind it than
``max_lateness_seconds`` are too late.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rollguard.analysis.explain_policy import (
    START,
    WARMUP,
    WINDOW,
    Draw,
    Runs,
    _quantile,
    drawer,
    watched,
)
from rollguard.detectors.blocks import Block
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.policy import Policy

LAGS = (0.0, 60.0, 300.0, 900.0)  # seconds from an output to its evaluation results
BATCH = 60.0  # judges deliver their results in batches this far apart
SHIFT = 2.0  # the candidate's shift, in tolerances


@dataclass
class LagReport:
    """Per lag: minutes to a verdict on an evaluation metric, with its lane and on one clock."""

    metric: str
    lanes: dict[float, list[float | None]] = field(default_factory=dict)
    one_clock: dict[float, list[float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def figures(found: Mapping[float, list[float | None]]) -> dict[str, Any]:
            return {f"{lag / 60:g}min": {"median_min": _quantile(v, 0.5),
                                         "p90_min": _quantile(v, 0.9), "runs": len(v),
                                         "caught": sum(x is not None for x in v)}
                    for lag, v in found.items()}
        return {"metric": self.metric, "lanes": figures(self.lanes),
                "one_clock": figures(self.one_clock)}


def one_clock(policy: Policy) -> Policy:
    """``policy`` with no evaluation lane: every metric on the service's one clock."""
    return replace(policy, opentelemetry=replace(policy.opentelemetry, evaluation_metrics=()))


def _blocks(rng: np.random.Generator, draws: Mapping[str, Draw], release: str, n: int,
            shift: float, t0: float, width: float, serial: int) -> Block:
    columns = {name: draw(rng, n, shift) for name, draw in draws.items()}
    ids = [str(k) for k in range(serial, serial + n)]
    ts = [t0 + width * (k + 0.5) / n for k in range(n)]
    return Block("explain", release, "", ids, ts, columns, columns, frozenset(columns))


def _part(block: Block, names: set[str], suffix: str) -> Block | None:
    columns = {n: c for n, c in block.columns.items() if n in names}
    if not columns:
        return None
    return Block(block.service, block.release, "", [i + suffix for i in block.event_ids],
                 block.ts, columns, columns, frozenset(columns))


def lag_run(policy: Policy, draws: Mapping[str, Draw], rate: float, share: float,
            lag: float, seed: int, slow: set[str]) -> dict[str, float | None]:
    """Minutes from the candidate's arrival until the worker reaches each metric's sustained
    verdict (None: not within the hour watched after the lag), ``slow`` metrics coming
    ``lag`` seconds after their outputs, in batches."""
    rng = np.random.default_rng(seed)
    monitor = ServiceMonitor("explain", policy)
    monitor.set_roles("stable", "candidate")
    width = policy.bucket_seconds
    found: dict[str, float | None] = dict.fromkeys(slow)
    waiting: list[tuple[float, Block]] = []  # evaluation results not yet delivered
    serial = 0
    for i in range(int((WARMUP + WINDOW + lag) // width) + 1):
        now = START + i * width
        deployed = i * width >= WARMUP
        due = [b for at, b in waiting if at <= now]
        waiting = [(at, b) for at, b in waiting if at > now]
        fresh: list[Block] = []
        for release, r, worse in (("stable", rate * (1 - share) if deployed else rate, 0.0),
                                  ("candidate", rate * share, SHIFT)):
            n = int(rng.poisson(r * width)) if release == "stable" or deployed else 0
            if n:
                block = _blocks(rng, draws, release, n, worse, now, width, serial)
                serial += n
                fast = _part(block, set(draws) - slow, "")
                later = _part(block, slow, "/e")
                fresh += [fast] if fast is not None else []
                if later is not None:  # in the first batch a lag after its outputs' end
                    arrives = -(-(now + width + lag - START) // BATCH) * BATCH + START
                    waiting.append((arrives, later))
        for block in due + fresh:
            for decision in monitor.observe_block(block):
                name = decision.evidence.get("metric")
                if decision.verdict == "sustained" and name in found and found[name] is None:
                    found[name] = (now - START - WARMUP) / 60
        if all(v is not None for v in found.values()):
            break
    return found


def evaluation_lag(policy: Policy, rate: float, share: float, bases: Mapping[str, float],
                   runs: Runs) -> list[LagReport]:
    """Per evaluation metric of ``policy``, minutes to a verdict at each of :data:`LAGS`."""
    slow = set(policy.opentelemetry.evaluation_metrics) & set(policy.metrics)
    judged = watched(policy)
    draws = {name: drawer(rule, bases[name]) for name, rule in policy.metrics.items()}
    reports = {name: LagReport(name) for name in sorted(slow)}
    seed = runs.seed * 1_000_003 + 7000
    for lag in LAGS:
        for lanes, clock in ((True, judged), (False, one_clock(judged))):
            got = [lag_run(clock, draws, rate, share, lag, seed + k, slow)
                   for k in range(runs.shift_runs)]
            for name, report in reports.items():
                (report.lanes if lanes else report.one_clock)[lag] = [g[name] for g in got]
    return list(reports.values())


def lag_table(policy: Policy, reports: list[dict[str, Any]]) -> list[str]:
    """The readable form of :func:`evaluation_lag`'s figures."""
    if not reports:
        return []
    lags = [f"{lag / 60:g}min" for lag in LAGS]

    def text(shift: Mapping[str, Any]) -> str:
        median, p90 = shift["median_min"], shift["p90_min"]
        return ("never" if median is None else f"{median:g}") + " / " + (
            "never" if p90 is None else f"{p90:g}")

    lanes = policy.opentelemetry
    runs = reports[0]["lanes"][lags[0]]["runs"]
    lines = [
        "", "evaluation results late: minutes from the candidate's arrival until the worker "
        f"reaches the rollback, 2x the tolerance, median / 90th percentile of {runs} runs, "
        f"results in batches {BATCH:g} s apart; with the evaluation lane (results count up to "
        f"{lanes.evaluation_lateness_seconds:g} s behind the newest) and on one clock "
        f"(spans set the time, results over {policy.max_lateness_seconds:g} s behind it "
        "are too late)", "",
        "| metric | clock | " + " | ".join(f"lag {lag / 60:g} min" for lag in LAGS) + " |",
        "| --- | --- |" + " ---: |" * len(LAGS)]
    for m in reports:
        for key, label in (("lanes", "its lane"), ("one_clock", "one clock")):
            lines.append(f"| {m['metric']} | {label} | "
                         + " | ".join(text(m[key][lag]) for lag in lags) + " |")
    return lines
