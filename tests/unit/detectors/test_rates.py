"""Rates of rare events over many seeds and base rates, judged bucket by bucket.

The bucket-level simulation (bench/rate_sim.py) feeds the real ``assess_bucket`` with drawn
counts, so these tests can afford dozens of hour-long runs per case and base rates other
than the generator's (hallucination 1 %..10 %, error 0.3 %..1 %).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.rate_sim import RateCase, one_metric_policy, rollback_time
from rollguard.detectors.accumulate import QUANTILE
from rollguard.detectors.evidence import Hypotheses, hypotheses
from rollguard.detectors.histogram import RATIO, bin_of
from rollguard.detectors.policy import Policy, default_policy

# (base rate, tolerance) pairs: the default policy's hallucination (2 pp) and error /
# complaint / toxicity (1 pp) tolerances at base rates the generator does not use.
BASES = [(0.01, 0.02), (0.03, 0.02), (0.1, 0.02), (0.003, 0.01), (0.005, 0.01)]


def policy_for(tol: float) -> Policy:
    return one_metric_policy(default_policy(), tol)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=st.sampled_from(BASES), magnitude=st.floats(1.0, 1000.0),
       length=st.floats(10.0, 120.0), onset=st.floats(0.0, 1200.0),
       rate=st.sampled_from([0.5, 2.0, 8.0, 20.0]), seed=st.integers(0, 10**6))
def test_a_rate_blip_of_any_size_never_rolls_back(pair: tuple[float, float], magnitude: float,
                                                 length: float, onset: float, rate: float,
                                                 seed: int) -> None:
    """Up to 2 minutes of any rate (up to every output flagged), then healthy: no rollback."""
    base, tol = pair
    case = RateCase("blip", base, tol, rate=rate, magnitude=magnitude, blip=length,
                    onset=onset, duration=600 + onset + 1800)
    assert rollback_time(case, seed, policy_for(tol)) is None


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=st.sampled_from(BASES), magnitude=st.floats(0.0, 0.5),
       rate=st.sampled_from([0.5, 2.0, 8.0]), seed=st.integers(0, 10**6))
def test_half_tolerance_rate_never_rolls_back(pair: tuple[float, float], magnitude: float,
                                             rate: float, seed: int) -> None:
    """A rate worse by at most half the tolerance for an hour is never rolled back."""
    base, tol = pair
    case = RateCase("half", base, tol, rate=rate, magnitude=magnitude, duration=3600)
    assert rollback_time(case, seed, policy_for(tol)) is None


def test_two_rate_blips_an_hour_apart_never_roll_back() -> None:
    """Two blips of 10x tolerance an hour apart are two blips, over 20 seeds."""
    case = RateCase("two", 0.03, 0.02, magnitude=10.0, blip=120, onset=300, blips=(3900,),
                    duration=600 + 4800)
    assert [s for s in range(20) if rollback_time(case, s, policy_for(0.02)) is not None] == []


@pytest.mark.parametrize(("base", "tol", "caught", "median"),
                         [(0.03, 0.02, 28, 13), (0.005, 0.01, 27, 14), (0.1, 0.02, 15, 25)])
def test_sustained_2x_rate_is_caught_in_most_seeds(base: float, tol: float, caught: int,
                                                   median: float) -> None:
    """A 2x rate at 2 ev/s: caught within 25 min in ``caught`` of 30 seeds.

    The 8-minute goal is not met at exactly 2x: see bench/RESULTS-detectors.md for why the
    information in 2 events/s does not allow it together with the blip guarantee. At a 10 %
    base rate a 2 pp tolerance is a small relative change, so it takes longer still.
    """
    case = RateCase("2x", base, tol, duration=600 + 1500)
    found = [rollback_time(case, s, policy_for(tol)) for s in range(30)]
    delays = sorted(t / 60 for t in found if t is not None)
    assert all(d >= 0 for d in delays), "rolled back before the onset"
    assert len(delays) >= caught, f"missed {30 - len(delays)} of 30"
    assert statistics.median(delays) <= median, delays


def test_sustained_4x_rate_is_caught_within_8_minutes() -> None:
    """At 4x the tolerance a rate is caught within 8 minutes in at least 9 seeds of 10."""
    case = RateCase("4x", 0.005, 0.01, magnitude=4.0, duration=600 + 900)
    found = [rollback_time(case, s, policy_for(0.01)) for s in range(20)]
    assert sum(1 for t in found if t is not None and 0 <= t <= 480) >= 18, found


def _p0(h: Hypotheses) -> float:
    """H0's exceedance probability, recovered from the two log-ratios of a Hypotheses."""
    ea, eb = math.exp(h.a), math.exp(h.b)
    return (eb - 1.0) / (eb - ea)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(1.0, 1e5), min_size=200, max_size=600),
       tol=st.floats(0.05, 1.0), relative=st.booleans())
def test_quantile_h0_bounds_the_candidates_exceedance_within_one_bin(
        values: list[float], tol: float, relative: bool) -> None:
    """p0 is never below the share of outputs a candidate worse by tol/2 puts above the cut
    (the false-alarm bound needs that), and over-states it by at most one histogram bin
    (more slack would cost power for nothing)."""
    hist: dict[int, float] = {}
    for v in values:
        hist[bin_of(v)] = hist.get(bin_of(v), 0.0) + 1.0
    rule = replace(default_policy().metrics["latency_ms"], relative=relative,
                   tolerance=tol if relative else tol * 1000)
    h = hypotheses(rule, QUANTILE, [float(len(values)), hist, 1.0], margin=0.0)
    if h is None:
        return
    edge = RATIO ** (h.cut_bin + 1)
    shift = (lambda v: v * (1 + rule.tolerance / 2)) if relative else (
        lambda v: v + rule.tolerance / 2)
    truth = sum(1 for v in values if shift(v) >= edge) / len(values)
    slack = sum(1 for v in values if shift(v * RATIO) >= edge) / len(values)
    assert truth - 1e-9 <= _p0(h) <= max(slack, 1e-6) + 1e-9  # 1e-6: the floor of p0
