"""Measure a candidate's closed bucket: each metric's evidence against its baseline.

Pure: plain data in (the bucket context, the candidate's sums), readings out; nothing is
changed. :mod:`detectors.assess` folds the readings into the tracks, then
:mod:`detectors.decide` reads the verdicts off them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollguard.detectors.accumulate import KINDS, Bucket
from rollguard.detectors.candidate import Context
from rollguard.detectors.evidence import Hypotheses, hypotheses

THIN = 10.0  # a concurrent baseline is tested against from min_samples / THIN samples


@dataclass(frozen=True, slots=True)
class Reading:
    """One metric of one closed bucket: the candidate's sums (``entry``), the hypotheses of
    its baseline (None: the baseline is too thin to test against), the bucket's
    log-likelihood ratio and what the candidate's value is computed from (``s``)."""

    name: str
    entry: list[Any]
    hyp: Hypotheses | None
    llr: float = 0.0
    s: float = 0.0

    @property
    def samples(self) -> int:
        return int(self.entry[0])


def measure(ctx: Context, sums: Bucket | None) -> dict[str, Reading]:
    """The readings of the metrics the candidate has samples of in this bucket.

    >>> from rollguard.detectors.policy import default_policy
    >>> ctx = Context("chat", default_policy(), "v1", 7, 80.0,
    ...               {"error": [10_000.0, 50.0, 50.0]}, {})
    >>> r = measure(ctx, {"error": [100, 9.0, 9.0]})["error"]
    >>> r.samples, r.llr > 0, r.hyp.baseline
    (100, True, 0.005)
    """
    policy = ctx.policy
    readings: dict[str, Reading] = {}
    if not sums:
        return readings
    for name, rule in policy.metrics.items():
        entry = sums.get(name)
        if entry is None:
            continue
        # The stable at the same moments may hold fewer samples than the history: it is
        # tested against from a tenth of them, its margin making a thin one careful.
        if name in ctx.concurrent:
            hyp = hypotheses(rule, KINDS[rule.statistic], ctx.stable_ref.get(name),
                             policy.baseline_margin, rule.min_samples / THIN)
        elif ctx.history_hyps is not None:
            hyp = ctx.history_hyps[name]
        else:
            hyp = hypotheses(rule, KINDS[rule.statistic], ctx.stable_ref.get(name),
                             policy.baseline_margin)
        if hyp is None:
            readings[name] = Reading(name, entry, None)
        else:
            llr, s = hyp.score(entry)
            readings[name] = Reading(name, entry, hyp, llr, s)
    return readings
