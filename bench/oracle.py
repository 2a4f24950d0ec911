"""The oracle bound beside the default policy's delays (bench only).

The oracle is the best *single fixed-sample* test of a scenario's degraded metric that knows
what the monitor cannot: the onset, the true healthy level and spread (bench/scenarios.py),
and that it will look exactly once. It is held to the same two guarantees as the monitor:

* **The blip**: a rollback must survive leaving out any 2-minute stretch, so the oracle tests
  the candidate's data from the onset to ``onset + T`` with the most incriminating 2-minute
  window (the largest excess over H0) left out.
* **False rollbacks**: it tests H0 "worse by half the tolerance" at level ``alpha`` (default
  0.001, about the monitor's measured rate: none in 1,220 runs where none was due): exact
  binomial tests for rates and shares, a z test with the true spread for means, and for the
  p95 a binomial test of the share above H0's p95 (the statistic the policy names; a test
  that assumed the lognormal shape could use the log-mean instead).

Its **median delay** is the smallest ``T`` (on a 10-second grid) at which the test at ``T``
rejects in at least half of a family's runs: no single test that looks once does better on
that data. Per run :func:`rejections` gives the ``T`` at which the test rejects.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from bench.scenarios import BASE, CANDIDATE, START, TOLERANCE, Scenario

GRID = 10.0  # seconds between the horizons T tried
BLIP = 120.0
Z_P95 = 1.6448536269514722


def _h0(metric: str) -> tuple[str, float, float, float]:
    """(test, H0 level, sd for means, sign): the candidate worse by half the tolerance."""
    tol, base = TOLERANCE[metric], BASE[metric]
    if metric in ("hallucination", "toxicity", "error", "complaint"):
        return "binomial", base + tol / 2, 0.0, 1.0
    if metric == "accuracy":
        return "z", base - tol / 2, 0.08, -1.0
    if metric == "cost_usd":  # lognormal(-0.045, 0.3) x base: mean base, sd 0.3069 x base
        mean = base * (1 + tol / 2)
        return "z", mean, mean * math.sqrt(math.exp(0.09) - 1), 1.0
    # latency: lognormal(0, 0.5) x 600 ms; the share above H0's p95 is 5 % under H0.
    return "binomial", 0.05, base * math.exp(0.5 * Z_P95) * (1 + tol / 2), 1.0


def rejections(scenario: Scenario, alpha: float = 0.001) -> list[float]:
    """Horizons ``T`` (seconds after the onset) at which the oracle's test rejects H0."""
    metric, onset = scenario.metric, scenario.truth().onset
    if metric is None or onset is None:
        return []
    test, level, spread, sign = _h0(metric)
    times, values = [], []
    for e in scenario.events():
        if e.release == CANDIDATE and e.ts >= onset and metric in e.metrics:
            times.append(e.ts - onset)
            value = e.metrics[metric]
            if metric == "toxicity":
                value = float(value >= 0.5)
            elif metric == "latency_ms":
                value = float(value >= spread)  # spread holds the H0 cut here
            values.append(value)
    t, x = np.array(times), np.array(values)
    excess = np.concatenate([[0.0], np.cumsum(sign * (x - level))])
    counts = np.concatenate([[0.0], np.cumsum(x)])
    ends = np.searchsorted(t, t + BLIP)  # the 2-minute window starting at each event
    out = []
    horizon = BLIP + GRID
    last = (START + scenario.duration) - onset
    while horizon <= last:
        m = int(np.searchsorted(t, horizon))
        if m:
            stop = np.minimum(ends[:m], m)
            gains = excess[stop] - excess[:m]
            i = int(np.argmax(gains))
            j = int(stop[i])
            n = m - (j - i)
            total = counts[m] - (counts[j] - counts[i])
            if n > 0 and _rejects(test, n, total, level, spread, sign, alpha):
                out.append(horizon)
        horizon += GRID
    return out


def _rejects(test: str, n: int, total: float, level: float, spread: float, sign: float,
             alpha: float) -> bool:
    if test == "binomial":
        k = round(total)
        return bool(stats.binom.sf(k - 1, n, level) <= alpha)
    z = sign * (total / n - level) / (spread / math.sqrt(n))
    return bool(z >= stats.norm.isf(alpha))


def median_delay(found: list[list[float]]) -> float | None:
    """Minutes: the smallest horizon at which at least half the runs reject, None if none.

    >>> median_delay([[130.0, 140.0], [140.0], [150.0]])
    2.3333333333333335
    """
    runs = [set(run) for run in found]
    for h in sorted(set().union(*runs)) if runs else []:
        if 2 * sum(h in run for run in runs) >= len(runs):
            return h / 60
    return None


# -- guarded rollouts: the best fixed-sample non-inferiority test ----------------------------


def _ni_power(metric: str, n: np.ndarray, alpha: float) -> np.ndarray:
    """Power, at each sample size ``n``, of the best one-sided fixed-sample test of H0 "worse
    by the tolerance" at level ``alpha`` for a candidate as good as the stable, knowing the
    true level and spread (the values ``rollguard policy explain`` draws): exact binomial
    tests for rates, shares and the share above the p95 cut, z tests with the true spread
    for means."""
    tol, base = TOLERANCE[metric], BASE[metric]
    if metric in ("hallucination", "toxicity", "error", "complaint"):
        p0, p1 = base + tol, base
    elif metric == "latency_ms":  # share above 1.25 x the true p95: 5 % under H0
        p0, p1 = 0.05, float(stats.norm.sf(Z_P95 + math.log(1 + tol) / 0.5))
    else:
        effect = 0.03 / 0.08 if metric == "accuracy" else tol / math.sqrt(math.exp(0.09) - 1)
        return np.asarray(stats.norm.cdf(effect * np.sqrt(n) - stats.norm.isf(alpha)))
    c = stats.binom.ppf(alpha, n, p0)
    c = np.where(stats.binom.cdf(c, n, p0) > alpha, c - 1, c)  # the largest k at level alpha
    return np.asarray(np.where(c >= 0, stats.binom.cdf(c, n, p1), 0.0))


def noninferiority_samples(metrics: tuple[str, ...], alpha: float, power: float,
                           most: int = 20_000) -> int | None:
    """The fewest samples (of every metric, as each event carries all) at which the oracle's
    tests pass a candidate as good as the stable on every metric with probability ``power``,
    each at level ``alpha``; None beyond ``most``.

    >>> noninferiority_samples(("error",), 0.0067, 0.5)
    702
    """
    n = np.arange(1, most + 1)
    joint = np.ones(len(n))
    for metric in metrics:
        joint *= _ni_power(metric, n, alpha)
    hits = np.flatnonzero(joint >= power)
    return int(n[hits[0]]) if len(hits) else None
