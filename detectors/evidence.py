"""The per-bucket evidence: a log-likelihood ratio of "worse by 2x tolerance" against
"worse by at most half the tolerance", both measured from the baseline.

For every closed bucket the candidate's sums are scored against two hypotheses built from the
baseline's reference: H0, the candidate is worse by ``tolerance / 2`` (acceptable), and H1,
it is worse by ``2 * tolerance`` (a regression). Summed over buckets this is the statistic of
Page's CUSUM, whose false-alarm rate under H0 is bounded by ``exp(-threshold)`` per unit of
expected evidence; anything better than H0 only makes false alarms rarer. Both hypotheses are
moved further by ``baseline_margin`` standard errors of the baseline, so a thin or noisy
baseline makes the test more careful, never less.

* rate / share: Bernoulli likelihoods of the count of 1s (or of values >= threshold).
* mean: Gaussian likelihoods with the baseline's variance (values are clipped upstream).
* quantile: a regression of the q-quantile by a scale factor moves mass above a cut; the
  share of candidate values above the cut is Bernoulli with probabilities read off the
  baseline histogram shifted by each hypothesis. Rare huge outliers count once each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollguard.detectors.accumulate import KINDS, MEAN, QUANTILE, mean_and_sd, weight
from rollguard.detectors.histogram import INV_LOG_RATIO, RATIO, bin_of, quantile, weight_above
from rollguard.detectors.policy import MetricRule

_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Hypotheses:
    """H0/H1 for one metric in one bucket, and the baseline they were read from.

    For Bernoulli kinds ``a``/``b`` are the log-ratios of a 1 and of a 0; for means, ``a`` is
    the slope and ``b`` the midpoint of the Gaussian log-likelihood ratio.
    """

    kind: int
    baseline: float
    baseline_samples: float
    a: float
    b: float
    cut_bin: int = 0

    def score(self, entry: list[Any]) -> tuple[float, float]:
        """``(llr, s)`` of one bucket entry; ``s`` is its count of 1s, its sum, or its number
        of values above the quantile cut (what the candidate's value is computed from)."""
        n = entry[0]
        if self.kind == MEAN:
            total = entry[1]
            return self.a * (total - n * self.b), total
        if self.kind == QUANTILE:
            cut = self.cut_bin
            k = float(sum(c for b, c in entry[1].items() if b > cut))
        else:
            k = entry[1]
        return k * self.a + (n - k) * self.b, k


def _bernoulli(p0: float, p1: float) -> tuple[float, float] | None:
    p0 = min(max(p0, _EPS), 1 - _EPS)
    p1 = min(max(p1, _EPS), 1 - _EPS)
    if abs(p1 - p0) < _EPS:
        return None  # the baseline leaves no room to be worse: nothing to test
    return math.log(p1 / p0), math.log((1 - p1) / (1 - p0))


def hypotheses(rule: MetricRule, kind: int, ref: list[Any] | None,
               margin: float, min_samples: float | None = None) -> Hypotheses | None:
    """Build H0/H1 from the baseline reference; None when the baseline holds fewer than
    ``min_samples`` (default: the rule's).

    >>> from rollguard.detectors.policy import default_policy
    >>> rule = default_policy().metrics["hallucination"]
    >>> h = hypotheses(rule, 0, [10_000.0, 300.0, 300.0], margin=0.0)   # baseline rate 3 %
    >>> round(h.baseline, 3), h.score([100, 7, 7])[0] > 0 > h.score([100, 3, 3])[0]
    (0.03, True)
    """
    if ref is None or weight(ref) < (rule.min_samples if min_samples is None else min_samples):
        return None
    w = ref[0]
    sign = rule.sign
    if kind == QUANTILE:
        return _quantile_hypotheses(rule, ref, margin)
    if kind == MEAN:
        mean, sd = mean_and_sd(ref)
        variance = max(sd * sd, (1e-6 * abs(mean)) ** 2, 1e-18)
        tol = rule.tolerance * abs(mean) if rule.relative else rule.tolerance
        shift = margin * sd / math.sqrt(w)
        mu0 = mean + sign * (0.5 * tol + shift)
        mu1 = mean + sign * (2.0 * tol + shift)
        return Hypotheses(MEAN, mean, w, (mu1 - mu0) / variance, 0.5 * (mu0 + mu1))
    p = ref[1] / w
    tol = rule.tolerance * p if rule.relative else rule.tolerance
    p_smooth = (ref[1] + 0.5) / (w + 1.0)  # a baseline of zero 1s still has an uncertainty
    shift = margin * math.sqrt(p_smooth * (1 - p_smooth) / w)
    ratios = _bernoulli(p + sign * (0.5 * tol + shift), p + sign * (2.0 * tol + shift))
    if ratios is None:
        return None
    return Hypotheses(kind, p, w, ratios[0], ratios[1])


class EveryHypotheses(dict[str, "Hypotheses | None"]):
    """:func:`hypotheses` of each metric against one reference, made when first asked for
    (a bucket's baseline: the weather and the candidate's measurements share them).

    >>> from rollguard.detectors.policy import default_policy
    >>> p = default_policy()
    >>> every = EveryHypotheses(p.metrics, {"error": [1000.0, 5.0, 5.0]}, 1.0)
    >>> every["error"].baseline, every["latency_ms"], len(every)
    (0.005, None, 2)
    """

    def __init__(self, rules: Mapping[str, MetricRule], refs: Mapping[str, list[Any]],
                 margin: float) -> None:
        super().__init__()
        self.rules, self.refs, self.margin = rules, refs, margin

    def __missing__(self, name: str) -> Hypotheses | None:
        rule = self.rules[name]
        made = self[name] = hypotheses(rule, KINDS[rule.statistic], self.refs.get(name),
                                       self.margin)
        return made


def _quantile_hypotheses(rule: MetricRule, ref: list[Any], margin: float) -> Hypotheses | None:
    w, hist = ref[0], ref[1]  # weights scaled by ref[2]: only ratios of them are used here
    base = quantile(hist, rule.q)
    if not base > 0:
        return None
    tol = rule.tolerance
    cut_bin = bin_of(base * (1 + tol) if rule.relative else base + tol)
    # The candidate counts values in bins above cut_bin, i.e. values >= edge. Under H0 it is
    # the baseline worse by tol/2, so it counts a baseline value v iff shifted(v) >= edge.
    edge = RATIO ** (cut_bin + 1)
    if rule.relative:
        y0, y1 = edge / (1 + tol / 2), edge / (1 + 2 * tol)
    else:
        y0, y1 = edge - tol / 2, edge - 2 * tol
    # H0 takes the whole bin holding y0: binning can only over-state the acceptable
    # exceedance (the false-alarm bound needs p0 >= the truth). H1 only tunes the power, so
    # it takes the best estimate (log-linear within the bin).
    p0 = weight_above(hist, bin_of(y0) - 1) / w
    p1 = _share_above(hist, y1) / w
    samples = weight(ref)
    shift = margin * math.sqrt(max(p0 * (1 - p0), 1.0 / samples) / samples)
    ratios = _bernoulli(p0 + shift, p1 + shift)
    if ratios is None or p1 <= p0:
        return None
    return Hypotheses(QUANTILE, base, samples, ratios[0], ratios[1], cut_bin=cut_bin)


def _share_above(hist: dict[int, float], value: float) -> float:
    """Weight of values above ``value``, splitting its bin log-linearly."""
    if value <= 0.0:
        return sum(hist.values())
    index = bin_of(value)
    inside = math.log(value) * INV_LOG_RATIO - index  # position within the bin, 0..1
    return weight_above(hist, index) + hist.get(index, 0.0) * (1.0 - inside)
