"""The per-bucket evidence that a candidate is *no worse* than the stable release: the
regression test of :mod:`detectors.evidence` turned round, for a guarded rollout.

H0, the candidate is worse by the rule's full ``tolerance``; H1, it is as good as the
baseline. Each bucket's log-likelihood ratio ``log L(H1) / L(H0)`` is added up over a
step: under H0 the likelihood ratio is a non-negative martingale, so by Ville's inequality
the sum ever reaches ``threshold`` with probability at most ``exp(-threshold)`` — the same
error bound as the regression test's CUSUM, at every moment, however long a step lasts
(a sequential probability ratio test with no lower boundary). A candidate worse than the
tolerance passes even more rarely.

The hypotheses are read off the baseline's estimate, whose error ``e`` (standard error
``se``) is a bias of every bucket alike: with H0 ``tolerance`` from H1, a candidate at the
tolerance passes with probability about ``exp(-threshold * (1 - 2e / tolerance))``
(Gaussian approximation), which is ``exp(-threshold) * exp(2 threshold² se² / tolerance²)``
on average over the baseline's error. Moving H0 towards H1 by
``threshold * se² / tolerance`` takes that factor back, so the bound holds for the test as
a whole, the baseline's own uncertainty included; ``baseline_margin`` multiplies this shift
(1: just the bound; the default policy's 1.0). A thin baseline leaves no room: not judged.

* rate / share: Bernoulli likelihoods of the count of 1s (or of values >= threshold).
* mean: Gaussian likelihoods with the baseline's variance.
* quantile: distribution-free. The candidate's q-quantile is worse than ``(1 + tolerance)``
  times the baseline's when more than ``1 - q`` of its values lie above that cut, whatever
  their shape: H0 is a share of exactly ``1 - q`` above the cut, H1 the baseline's own share
  above it. The baseline's quantile is read ``baseline_margin`` standard errors of its level
  low, and cut and quantile are rounded down to histogram bins, so the share counted can
  only be over-stated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rollguard.detectors.accumulate import KINDS, MEAN, QUANTILE, Bucket, mean_and_sd, weight
from rollguard.detectors.candidate import Context
from rollguard.detectors.evidence import Hypotheses
from rollguard.detectors.histogram import RATIO, bin_of, weight_above
from rollguard.detectors.measure import THIN
from rollguard.detectors.policy import MetricRule

_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Noninferiority:
    """The hypotheses of one metric's non-inferiority test in one bucket (``hyp.score`` gives
    a bucket's ``log L(H1) / L(H0)``), and ``per_sample``: the evidence a candidate as good as
    the baseline adds per sample on average (the Kullback-Leibler divergence of H1 from H0)."""

    hyp: Hypotheses
    per_sample: float


@dataclass(frozen=True, slots=True)
class StepReading:
    """One metric of one closed bucket, for a guarded rollout: the candidate's samples and
    its non-inferiority evidence (``llr`` None: the baseline is too thin to judge against)."""

    samples: int
    llr: float | None
    per_sample: float = 0.0


def _bernoulli(p0: float, p1: float, kind: int, baseline: float, samples: float,
               cut_bin: int = 0) -> Noninferiority | None:
    # H0 share p0 (worse by the tolerance), H1 share p1 (as good as the baseline).
    p0, p1 = min(max(p0, _EPS), 1 - _EPS), min(max(p1, _EPS), 1 - _EPS)
    if abs(p0 - p1) < _EPS:
        return None
    a, b = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    return Noninferiority(Hypotheses(kind, baseline, samples, a, b, cut_bin), p1 * a + (1 - p1) * b)


def _room(tol: float, se: float, margin: float, threshold: float) -> float:
    """The distance from H1 to H0: the tolerance less the shift that keeps the error bound
    over the baseline's own error (see the module's docstring).

    >>> round(_room(0.01, 0.0007, 1.0, 5.0), 5)   # 0.5 % over 10,000 samples, +1 pp
    0.00975
    """
    return tol - margin * threshold * se * se / tol if tol > 0 else 0.0


def noninferiority(rule: MetricRule, ref: list[Any] | None, margin: float,
                   threshold: float, min_samples: float | None = None) -> Noninferiority | None:
    """H0/H1 of ``rule``'s metric against the baseline reference ``ref``; None when it holds
    fewer than ``min_samples`` (default: the rule's) or leaves no room between them.

    >>> from rollguard.detectors.policy import default_policy
    >>> rule = default_policy().metrics["error"]
    >>> ni = noninferiority(rule, [10_000.0, 50.0, 50.0], 1.0, 5.0)   # baseline 0.5 %
    >>> ni.hyp.score([1000, 5, 5])[0] > 0 > ni.hyp.score([1000, 15, 15])[0]
    True
    >>> round(5.0 / ni.per_sample)   # samples an equal candidate needs for 5 nats, on average
    1145
    """
    if ref is None or weight(ref) < (rule.min_samples if min_samples is None else min_samples):
        return None
    kind = KINDS[rule.statistic]
    if kind == QUANTILE:
        return _quantile(rule, ref, margin)
    w, sign = ref[0], rule.sign
    if kind == MEAN:
        mean, sd = mean_and_sd(ref)
        variance = max(sd * sd, (1e-6 * abs(mean)) ** 2, 1e-18)
        tol = rule.tolerance * abs(mean) if rule.relative else rule.tolerance
        room = _room(tol, sd / math.sqrt(w), margin, threshold)
        if room <= 0:
            return None
        mu0 = mean + sign * room
        hyp = Hypotheses(MEAN, mean, w, (mean - mu0) / variance, 0.5 * (mean + mu0))
        return Noninferiority(hyp, room * room / (2 * variance))
    p = ref[1] / w
    p_smooth = (ref[1] + 0.5) / (w + 1.0)  # a baseline of zero 1s still has an uncertainty
    tol = rule.tolerance * p if rule.relative else rule.tolerance
    room = _room(tol, math.sqrt(p_smooth * (1 - p_smooth) / w), margin, threshold)
    if room <= 0:
        return None
    return _bernoulli(p_smooth + sign * room, p_smooth, kind, p, w)


def _quantile(rule: MetricRule, ref: list[Any], margin: float) -> Noninferiority | None:
    hist: dict[int, float] = ref[1]
    w, samples = ref[0], weight(ref)
    # The baseline's quantile, read a margin of standard errors low, and its bin's lower edge.
    q = rule.q - margin * math.sqrt(rule.q * (1 - rule.q) / samples)
    running, target, edge_bin = 0.0, q * w, None
    for index in sorted(hist):
        running += hist[index]
        if running >= target:
            edge_bin = index
            break
    if edge_bin is None:
        return None
    base = RATIO ** edge_bin
    if not base > 0:
        return None
    tol = rule.tolerance
    cut_bin = bin_of(base * (1 + tol) if rule.relative else base + tol)
    share = weight_above(hist, cut_bin - 1) / w  # the baseline's share at or above the cut
    if share >= 1 - rule.q:
        return None
    # Hypotheses.score counts bins above its cut_bin: from the cut's own bin on.
    return _bernoulli(1 - rule.q, share, QUANTILE, base, samples, cut_bin - 1)


def step_readings(ctx: Context, sums: Bucket | None,
                  metrics: tuple[str, ...] | None = None) -> dict[str, StepReading]:
    """The non-inferiority readings of a candidate's closed bucket, for the metrics it has
    samples of (``metrics``: only these), against the same baseline as
    :func:`detectors.measure.measure` (the stable's history, or the stable at the same
    moments during a storm, tested from a tenth of the rule's ``min_samples``).

    >>> from rollguard.detectors.policy import default_policy
    >>> ctx = Context("chat", default_policy(), "v1", 7, 80.0,
    ...               {"error": [10_000.0, 50.0, 50.0]}, {})
    >>> r = step_readings(ctx, {"error": [100, 0.0, 0.0], "accuracy": [50, 44.0, 39.0]})
    >>> r["error"].samples, r["error"].llr > 0, r["accuracy"].llr
    (100, True, None)
    """
    policy = ctx.policy
    readings: dict[str, StepReading] = {}
    for name, entry in (sums or {}).items():
        rule = policy.metrics.get(name)
        if rule is None or (metrics is not None and name not in metrics):
            continue
        least = rule.min_samples / THIN if name in ctx.concurrent else None
        ni = noninferiority(rule, ctx.stable_ref.get(name), policy.baseline_margin,
                            policy.evidence_threshold, least)
        if ni is None:
            readings[name] = StepReading(int(entry[0]), None)
        else:
            readings[name] = StepReading(int(entry[0]), ni.hyp.score(entry)[0], ni.per_sample)
    return readings

