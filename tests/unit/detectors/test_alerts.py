"""Alerts a person can trust: a transient is a real excursion, inconclusive is one notice."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.scenarios import Scenario
from rollguard.analysis.replay import replay_events
from rollguard.detectors.candidate import Candidate, Context
from rollguard.detectors.decision import Decision
from rollguard.detectors.policy import default_policy
from rollguard.detectors.track import MetricTrack, excursion
from rollguard.detectors.unjudged import inconclusive_notice

HOUR = 3600.0


def verdicts(scenario: Scenario, verdict: str) -> list[Decision]:
    return [d for d in replay_events(scenario.events(), default_policy()) if d.verdict == verdict]


def healthy(seed: int, rate: float, duration: float = 600 + HOUR) -> Scenario:
    """A candidate on half the traffic, identical in quality to the stable."""
    return Scenario(seed, rate=rate / 2, stable_rate=rate / 2, duration=duration)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 100_000), rate=st.sampled_from([0.2, 0.5, 1.0, 2.0, 4.0]))
def test_a_healthy_candidate_gives_no_transient_alert(seed: int, rate: float) -> None:
    """Noise of a candidate as good as the stable is never reported as an excursion."""
    assert verdicts(healthy(seed, rate), "transient") == []


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 100_000), rate=st.sampled_from([2.0, 8.0]),
       metric=st.sampled_from(["hallucination", "toxicity", "accuracy", "latency_ms", "error",
                               "complaint", "cost_usd"]))
def test_a_real_excursion_gives_one_transient_alert(seed: int, rate: float,
                                                    metric: str) -> None:
    """A 2-minute 10x excursion that recovers is one transient alert naming the metric,
    with the excursion's evidence and samples at the policy's standard."""
    policy = default_policy()
    found = verdicts(Scenario(seed, rate=rate, metric=metric, magnitude=10.0, blip=120,
                              onset=300, duration=600 + 1200), "transient")
    assert [d.evidence["metric"] for d in found] == [metric]
    evidence = found[0].evidence
    assert evidence["llr"] >= policy.transient_evidence
    assert evidence["candidate_samples"] >= policy.transient_min_samples


@pytest.mark.parametrize("rate", [0.1, 0.2])
def test_a_thin_candidate_gets_one_inconclusive_notice_naming_every_metric(rate: float) -> None:
    """Low traffic: one notice per candidate, after the documented wait, naming each metric
    that cannot be judged, why, and the traffic it would need."""
    policy = default_policy()
    found = verdicts(healthy(11, rate, duration=600 + 2 * HOUR), "inconclusive")
    assert len(found) == 1, [d.reason for d in found]
    notice = found[0]
    assert notice.ts - (1_790_000_000 + 600) >= policy.inconclusive_after_seconds
    metrics = notice.evidence["metrics"]
    assert {"hallucination", "toxicity", "error", "complaint"} <= set(metrics)
    for name, why in metrics.items():
        assert why["why"] in ("samples", "baseline")
        assert why["needs_per_s"] > why["has_per_s"] >= 0
        assert name in notice.reason
    assert "needs >=" in notice.reason


def test_a_busy_candidate_gets_no_inconclusive_notice() -> None:
    assert verdicts(healthy(12, 2.0, duration=600 + HOUR), "inconclusive") == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-5.0, 5.0, allow_nan=False), max_size=40))
def test_the_excursion_is_the_stretch_with_the_most_evidence(values: list[float]) -> None:
    run = [[b, v, 2, 0.0] for b, v in enumerate(values)]
    llr, samples, first, last = excursion(run)
    best = max([0.0, *(sum(values[i:j + 1]) for i in range(len(values))
                       for j in range(i, len(values)))])
    assert llr == pytest.approx(best, abs=1e-9)
    if llr > 0:
        assert sum(values[first:last + 1]) == pytest.approx(llr)
        assert samples == 2 * (last + 1 - first)


def test_a_closing_episode_hands_over_its_whole_run() -> None:
    """Even when one bucket takes the CUSUM from its peak to zero, the run is returned."""
    track = MetricTrack()
    for bucket, llr in enumerate([3.0, 4.0, -50.0]):
        closed = track.update(bucket, llr, 10, 1.0, threshold=5.0, max_buckets=180)
    assert closed is not None and [r[1] for r in closed] == [3.0, 4.0, -50.0]
    assert excursion(closed)[:2] == (7.0, 20)


def test_a_candidate_of_state_version_2_keeps_what_it_had_said() -> None:
    """Per-metric alert flags of an older state become the metrics already noticed."""
    stale = MetricTrack(samples=5, stale=True).to_list()
    thin = MetricTrack(samples=5, thin=True).to_list()
    old = ["r2", 3, 9, False, [], {"error": stale, "complaint": thin,
                                   "cost_usd": MetricTrack().to_list()}, None]
    assert Candidate.from_list(old).noticed == {"error": "stopped", "complaint": "samples"}
    again = Candidate.from_list(Candidate.from_list(old).to_list())
    assert again.noticed == {"error": "stopped", "complaint": "samples"}


def test_the_notice_is_news_only_when_a_metric_joins_or_stops_arriving() -> None:
    """Too few samples and too thin a baseline taking turns near the minimum is one notice;
    a metric that can be judged again leaves silently; one that stops arriving is news."""
    policy = default_policy()
    one = replace(policy, metrics={"error": policy.metrics["error"]}, composites=())
    cand = Candidate("r2", first_bucket=0, tracks={"error": MetricTrack(samples=150)})

    def notice(bucket: int, baseline: float, samples: int) -> Decision | None:
        cand.tracks["error"].samples = samples
        ctx = Context("chat", one, "r1", bucket, bucket * 10.0,
                      {"error": [baseline, 1.0, 1.0]}, {})
        return inconclusive_notice(ctx, cand)

    assert notice(100, 500.0, 150) is None  # before the documented wait (30 min)
    first = notice(180, 500.0, 150)
    assert first is not None and first.evidence["metrics"]["error"]["why"] == "samples"
    assert notice(181, 150.0, 250) is None  # now the baseline is thin: the same news
    assert notice(182, 500.0, 250) is None  # can be judged: leaves silently
    cand.tracks["error"].stale = True
    again = notice(183, 500.0, 250)
    assert again is not None and again.evidence["metrics"]["error"]["why"] == "stopped"
    assert notice(184, 500.0, 250) is None
