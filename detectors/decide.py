"""Decide from a candidate's tracks: which metric is sustained, which episode was transient.

Pure: the tracks (already updated with this bucket's readings) and the context in, findings
out; :mod:`detectors.assess` records them in the candidate's state and words the decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rollguard.detectors.candidate import Context
from rollguard.detectors.decision import Verdict
from rollguard.detectors.evidence import Hypotheses
from rollguard.detectors.policy import MetricRule
from rollguard.detectors.track import MetricTrack, excursion, robust_score


@dataclass(frozen=True)
class Finding:
    """A verdict on one metric: ``run`` and ``start`` say which stretch is its evidence."""

    verdict: Verdict
    rule: MetricRule
    hyp: Hypotheses
    run: list[list[float]]
    start: int
    llr: float
    bar: float


def transient_bar(policy_evidence: float, searched: int) -> float:
    """The evidence a recovered episode's excursion needs: the policy's standard plus the
    log of how many buckets were searched to find it (the run up to the excursion's end:
    a CUSUM-like search has about one chance in ``exp(bar)`` per bucket of a false
    excursion, so ``searched`` buckets share the standard's error, as Bonferroni says).

    >>> round(transient_bar(8.0, 1), 2), round(transient_bar(8.0, 20), 2)
    (8.0, 11.0)
    """
    return policy_evidence + math.log(max(1, searched))


def transient(ctx: Context, rule: MetricRule, run: list[list[float]],
              hyp: Hypotheses) -> Finding | None:
    """A recovered episode is a transient when its strongest stretch (the excursion) meets
    the policy's standard, over enough samples that no single outlier of a skewed metric
    carries it. Positive evidence already places the stretch's value nearer "2x the
    tolerance" than "half of it", i.e. beyond the tolerance."""
    policy = ctx.policy
    llr, samples, first, last = excursion(run)
    bar = transient_bar(policy.transient_evidence, last + 1)
    if llr < bar or samples < policy.transient_min_samples:
        return None
    return Finding(Verdict.TRANSIENT, rule, hyp, run[:last + 1], first, llr, bar)


def sustained(ctx: Context, rule: MetricRule, track: MetricTrack, hyp: Hypotheses,
              bar: float) -> tuple[float, Finding | None]:
    """``(score, finding)``: the blip-robust score of the track's run, and a sustained
    finding when it reaches ``bar`` with the last minute not pointing back to the baseline."""
    score, start = robust_score(track.run, ctx.buckets[0])
    if score >= bar and track.recent_llr() >= 0.0:
        return score, Finding(Verdict.SUSTAINED, rule, hyp, track.run, start, score, bar)
    return score, None
