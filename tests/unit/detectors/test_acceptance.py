"""The acceptance criteria of the default policy, over several seeds each.

Delays are measured in event time from the onset of the regression (for a creep, from the
moment it reaches twice the tolerance). The benchmark (bench/detection_quality.py) runs the
same scenarios over many more seeds; these tests keep a few seeds per case so that the whole
suite stays fast.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.scenarios import METRICS, START, Scenario, dirty, to_lines
from rollguard.analysis.replay import Replay, replay_events
from rollguard.detectors.decision import Decision
from rollguard.detectors.policy import default_policy

CONTINUOUS = ("accuracy", "latency_ms", "cost_usd")
RATES = ("hallucination", "toxicity", "error", "complaint")
MINUTE = 60.0


def rollbacks(scenario: Scenario) -> list[Decision]:
    return [d for d in replay_events(scenario.events(), default_policy())
            if d.action == "rollback"]


def delay_minutes(scenario: Scenario) -> float | None:
    """Minutes from the onset to the rollback; None when there is none."""
    found = rollbacks(scenario)
    onset = scenario.truth().onset
    assert onset is not None
    if not found:
        return None
    assert found[0].ts >= START + scenario.deploy_at, "rolled back before the deploy"
    return (found[0].ts - onset) / MINUTE


# (median, worst) minutes over five seeds. Latency p95 is judged from the share of outputs
# above a cut, which carries less information than a mean: its worst case is slower.
CONTINUOUS_BOUNDS = {"accuracy": (5, 8), "latency_ms": (8, 13), "cost_usd": (4, 8)}
RATE_BOUNDS_4X = {"hallucination": (8, 10), "toxicity": (8, 10), "error": (8, 10),
                  "complaint": (8, 10)}


def delays(make, seeds: range) -> list[float]:
    found = [delay_minutes(make(seed)) for seed in seeds]
    assert None not in found, f"missed regressions: {found}"
    return sorted(d for d in found if d is not None)


@pytest.mark.parametrize("metric", CONTINUOUS)
def test_sustained_2x_regression_of_a_continuous_metric_rolls_back_within_minutes(
        metric: str) -> None:
    """Accuracy, latency p95 and cost at 2x tolerance and 2 ev/s: always rolled back, in
    8 minutes typically (median over seeds)."""
    found = delays(lambda s: Scenario(s, metric=metric, magnitude=2.0, duration=600 + 900),
                   range(5))
    median, worst = CONTINUOUS_BOUNDS[metric]
    assert found[0] >= 0 and found[2] <= median and found[-1] <= worst, found


@pytest.mark.parametrize("metric", RATES)
def test_sustained_4x_regression_of_a_rate_rolls_back_within_minutes(metric: str) -> None:
    """Rates of rare events (hallucination 3 %, error 0.5 %) at 4x tolerance and 2 ev/s.

    At exactly 2x, 2 events/s do not carry enough information for 8 minutes (see
    bench/RESULTS-detectors.md); 2x is checked against a 25-minute bound below.
    """
    found = delays(lambda s: Scenario(s, metric=metric, magnitude=4.0, duration=600 + 720),
                   range(3))
    median, worst = RATE_BOUNDS_4X[metric]
    assert found[0] >= 0 and found[1] <= median and found[-1] <= worst, found


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("metric", RATES)
def test_sustained_2x_regression_of_a_rate_rolls_back(metric: str, seed: int) -> None:
    """Rates at exactly 2x tolerance and 2 ev/s are rolled back, within 25 minutes."""
    delay = delay_minutes(Scenario(seed, metric=metric, magnitude=2.0, duration=600 + 1560))
    assert delay is not None and 0 <= delay <= 25


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("metric", CONTINUOUS)
def test_low_traffic_regression_of_a_continuous_metric_rolls_back_within_25_min(
        metric: str, seed: int) -> None:
    """At 0.5 ev/s a 2x regression of a continuous metric is rolled back within 25 min."""
    delay = delay_minutes(Scenario(seed, rate=0.5, metric=metric, magnitude=2.0,
                                   duration=600 + 1560))
    assert delay is not None and 0 <= delay <= 25


@pytest.mark.parametrize(("metric", "seed"), [("latency_ms", 0), ("hallucination", 1)])
def test_late_onset_regression_is_rolled_back(metric: str, seed: int) -> None:
    """A regression that starts 40 minutes after the deploy is still caught, after its onset."""
    magnitude = 2.0 if metric in CONTINUOUS else 4.0
    delay = delay_minutes(Scenario(seed, metric=metric, magnitude=magnitude, onset=2400,
                                   duration=600 + 2400 + 600))
    assert delay is not None and 0 <= delay <= 8


@pytest.mark.parametrize(("metric", "seed"), [("accuracy", 0), ("error", 1)])
def test_gradual_creep_is_rolled_back_once_it_is_large(metric: str, seed: int) -> None:
    """A creep to 4x over 10 minutes is rolled back within 8 min of passing 2x, not before 0.5x."""
    scenario = Scenario(seed, metric=metric, magnitude=4.0, creep=600, duration=600 + 1500)
    found = rollbacks(scenario)
    truth = scenario.truth()
    assert found and truth.earliest is not None and truth.onset is not None
    assert truth.earliest <= found[0].ts <= truth.onset + 8 * MINUTE


def test_full_cutover_is_judged_against_the_stable_history() -> None:
    """With no stable traffic left, the stable's recent history is the baseline."""
    delay = delay_minutes(Scenario(5, mode="cutover", metric="latency_ms", magnitude=2.0,
                                   duration=600 + 900))
    assert delay is not None and 0 <= delay <= 8


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metric=st.sampled_from(METRICS), magnitude=st.floats(0.0, 0.5),
       rate=st.sampled_from([0.5, 2.0, 8.0]), seed=st.integers(0, 10_000))
def test_half_tolerance_shift_never_rolls_back(metric: str, magnitude: float, rate: float,
                                               seed: int) -> None:
    """A candidate worse by at most half the tolerance, for an hour, is never rolled back."""
    assert not rollbacks(Scenario(seed, rate=rate, metric=metric, magnitude=magnitude,
                                  duration=600 + 3000))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metric=st.sampled_from(METRICS), magnitude=st.floats(1.0, 40.0),
       length=st.floats(10.0, 120.0), onset=st.floats(0.0, 900.0),
       rate=st.sampled_from([0.5, 2.0, 8.0]), seed=st.integers(0, 10_000))
def test_a_blip_never_rolls_back_however_large(metric: str, magnitude: float, length: float,
                                               onset: float, rate: float, seed: int) -> None:
    """A degradation of at most 2 minutes that fully recovers is never rolled back."""
    assert not rollbacks(Scenario(seed, rate=rate, metric=metric, magnitude=magnitude,
                                  blip=length, onset=onset, duration=600 + onset + 1200))


@pytest.mark.parametrize("metric", ["hallucination", "latency_ms", "accuracy"])
def test_a_large_blip_is_reported_as_transient(metric: str) -> None:
    """A big 2-minute blip at 2 ev/s gives a transient alert, and no rollback."""
    decisions = replay_events(Scenario(7, metric=metric, magnitude=10.0, blip=120, onset=300,
                                       duration=600 + 1500).events(), default_policy())
    assert [(d.action, d.verdict) for d in decisions] == [("alert", "transient")]
    assert decisions[0].evidence["metric"] == metric


@pytest.mark.parametrize(("metric", "seed"), [("error", 0), ("latency_ms", 1)])
def test_two_blips_an_hour_apart_are_still_blips(metric: str, seed: int) -> None:
    """Two large 2-minute blips an hour apart give no rollback."""
    assert not rollbacks(Scenario(seed, metric=metric, magnitude=10.0, blip=120, onset=300,
                                  blips=(3900,), duration=600 + 4500))


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(lambda s: Scenario(s, rate=0.2, duration=3600), id="low-traffic-noise"),
        pytest.param(lambda s: Scenario(s, heavy_tails=True, duration=3600), id="heavy-tails"),
        pytest.param(lambda s: Scenario(s, rate=1.0, load_swing=True, duration=4800),
                     id="load-rises-and-falls"),
    ],
)
def test_healthy_candidate_is_never_rolled_back(scenario, seed: int) -> None:
    """Noise at low traffic, rare huge latency outliers and load swings are not regressions."""
    assert not rollbacks(scenario(seed))


@pytest.mark.parametrize(("metric", "magnitude", "seed"),
                         [("hallucination", 4.0, 0), ("latency_ms", 2.0, 1), (None, 0.0, 2)])
def test_dirty_input_changes_no_decision(metric: str | None, magnitude: float,
                                         seed: int) -> None:
    """5 % junk lines, 3 % duplicates and +-3 s disorder: the same verdicts, the same minute."""
    events = list(Scenario(seed, metric=metric, magnitude=magnitude, duration=1800).events())
    clean = replay_events(events, default_policy())
    replay = Replay(default_policy())
    replay.feed_lines(dirty(to_lines(events), seed))
    replay.finish()
    messy = replay.decisions
    assert sum(replay.summary.rejected.values()) > 0 and replay.summary.duplicates > 0

    def verdicts(ds: list[Decision]) -> list[tuple[str, str, str]]:
        return [(d.action, d.verdict, d.evidence.get("metric", "")) for d in ds
                if d.action == "rollback"]

    assert verdicts(messy) == verdicts(clean)
    for a, b in zip(messy, clean, strict=False):
        if a.action == "rollback":
            assert abs(a.ts - b.ts) <= MINUTE
