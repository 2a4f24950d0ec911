"""The guarded rollout on the real decision core (monitor and ramp) over many seeds of the
rollout scenarios (bench/scenarios.py): 2 candidate events/s at every step, the default
policy and plan. bench/rollout_quality.py measures the same with more seeds."""

from __future__ import annotations

from bench.scenarios import rollout_scenarios
from rollguard.analysis.explain_policy import watched
from rollguard.analysis.explain_rollout import draws_of, per_step, run_ramp
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.policy import default_policy
from rollguard.detectors.rollout import gated_metrics

POLICY = default_policy()
DRAWS = draws_of(POLICY)
GATED = gated_metrics(POLICY)


def test_an_equal_candidate_reaches_stable_at_2_events_per_s() -> None:
    """A candidate as good as the stable passes every step and becomes stable, each step on
    evidence of every metric (never one without data)."""
    runs = [run_ramp(POLICY, DRAWS, s.traffic, s.shifts(), s.seed)
            for s in rollout_scenarios(11, 12)]
    assert [r.outcome for r in runs] == ["stable"] * 12
    assert not any(r.blind_advance for r in runs)
    assert all(sorted(r.passed) == [0, 1, 2, 3] for r in runs)
    # Each step takes minutes, not hours: about 15 at this traffic (the bench has figures).
    assert max(max(r.passed.values()) for r in runs) < 3600


def test_a_candidate_worse_by_1_5_tolerances_passes_no_step() -> None:
    """Worse by 1.5x the tolerance on one metric (each in turn), put at a step and judged by
    non-inferiority alone (its regressions only alerted) to the step's limit: no pass."""
    gate_only = watched(POLICY)
    outcomes = []
    for index in (0, 2):
        for s in rollout_scenarios(12 + index, 14, 1.5, GATED):
            one = run_ramp(gate_only, DRAWS, s.traffic, s.shifts(), s.seed, first_step=index,
                           one_step=True, window=POLICY.rollout.limit_seconds + 60.0,
                           gated=GATED)
            outcomes.append(one.outcome)
    assert outcomes == ["limit"] * 28


def test_a_candidate_worse_by_1_5_tolerances_never_reaches_100() -> None:
    """With the policy as it is, such a candidate is stopped (by its regression) before 100 %."""
    runs = [run_ramp(POLICY, DRAWS, s.traffic, s.shifts(), s.seed, window=4 * 3600.0)
            for s in rollout_scenarios(13, 14, 1.5, GATED)]
    assert all(r.highest < 100 for r in runs)
    assert {r.outcome for r in runs} <= {"abort", "window"}


def test_the_monitor_hands_each_closed_bucket_to_the_ramp_only_when_asked() -> None:
    """measure_ramp off: nothing is kept; on: one bucket per closed bucket, readings of the
    candidate's metrics, and the monitor's state is the same either way."""
    quiet, measuring = ServiceMonitor("chat", POLICY), ServiceMonitor("chat", POLICY)
    measuring.measure_ramp = True
    for monitor in (quiet, measuring):
        monitor.set_roles("stable", "candidate")
        run_traffic(monitor)
    assert quiet.drain_ramp() == []
    buckets = measuring.drain_ramp()
    assert len(buckets) == 59 and measuring.drain_ramp() == []
    assert set(buckets[-1].readings) == set(POLICY.metrics)
    assert quiet.to_bytes() == measuring.to_bytes()


def run_traffic(monitor: ServiceMonitor) -> None:
    import numpy as np

    from rollguard.analysis.explain_rollout import _blocks

    rng, serial = np.random.default_rng(5), 0
    for i in range(120):
        rates = per_step(2.0, 8.0)(5.0 if i >= 60 else 0.0)
        blocks, serial = _blocks(rng, DRAWS, 1_790_000_000.0 + 10 * i, 10.0, rates, {}, serial)
        for block in blocks:
            monitor.observe_block(block)
        if i == 60:
            monitor.drain_ramp()  # the warm-up's buckets had no candidate


def test_explain_gives_each_steps_time_and_pass_chances() -> None:
    """The explain figures: per step, an equal candidate's minutes to pass and how often a
    worse one passes; the table names every step."""
    from rollguard.analysis.explain_rollout import RolloutRuns, explain_rollout, rollout_table

    found = explain_rollout(POLICY, per_step(2.0, 8.0), RolloutRuns(equal_runs=2, step_runs=1))
    assert [row["percent"] for row in found["steps"]] == [1.0, 5.0, 25.0, 50.0]
    assert found["stable"] == 2 and found["blind_advances"] == 0
    assert all(0 < row["median_min"] < 60 and row["1.5x"] == {"passed": 0, "runs": 1}
               for row in found["steps"])
    lines = rollout_table(found, "2 candidate events/s")
    assert lines[0].startswith("guarded rollout at 2 candidate events/s: 2 of 2")
    assert len(lines) == 7
