"""Invariants of the guarded rollout, over arbitrary streams of readings (Hypothesis)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from rollguard.detectors.errors import RolloutRefused
from rollguard.detectors.noninferiority import StepReading
from rollguard.detectors.policy import policy_from_dict
from rollguard.detectors.rollout import Ramp, RampAction, RampVerdict, Regression

METRICS = {"error": {"statistic": "rate", "tolerance": 0.01},
           "accuracy": {"statistic": "mean", "worse": "lower", "tolerance": 0.03}}
PLAN = {"steps": [5, 25, 50, 100], "min_seconds": 30, "min_samples": 20, "limit_seconds": 300,
        "bake_seconds": 60, "approval_before": [50]}
POLICY = policy_from_dict({"metrics": METRICS, "rollout": PLAN})

reading = st.builds(StepReading, st.integers(0, 40),
                    st.one_of(st.none(), st.floats(-3.0, 6.0)), st.floats(0.0, 0.2))
bucket = st.fixed_dictionaries({}, optional={"error": reading, "accuracy": reading})
step = st.one_of(
    st.tuples(st.just("bucket"), bucket),
    st.tuples(st.just("approve"), st.sampled_from([25.0, 50.0, 100.0])),
    st.tuples(st.just("regress"), st.sampled_from(["alert", "rollback"])),
)


def run(ramp: Ramp, steps: list[tuple[str, Any]], start: int = 0) -> list[RampVerdict]:
    """Feed ``steps`` (one every 10 s of event time, from step ``start``) to ``ramp``."""
    verdicts = []
    for i, (kind, arg) in enumerate(steps, start):
        now = 10.0 * (i + 1)
        if kind == "bucket":
            verdicts.append(ramp.observe(now, arg))
        elif kind == "regress":
            verdicts.append(ramp.observe(now, {}, (Regression("error", arg),)))
        else:
            try:
                verdicts.append(ramp.approve(now, arg, "carol"))
            except RolloutRefused:
                continue
    return verdicts


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.just("bucket"), bucket), max_size=80))
def test_never_advances_with_a_metric_lacking_data(steps: list[tuple[str, Any]]) -> None:
    """Whatever the evidence of one metric, a metric with no data keeps every step closed."""
    blind = [(kind, {k: v for k, v in arg.items() if k != "accuracy"}) for kind, arg in steps]
    verdicts = run(Ramp.start(POLICY, 0.0), blind)
    assert not any(v.action in (RampAction.ADVANCE, RampAction.AWAIT_APPROVAL)
                   for v in verdicts)


@settings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=120))
def test_advances_one_step_at_a_time_and_only_on_evidence(steps: list[tuple[str, Any]]) -> None:
    """Each advance goes to the next step, with min_samples and the threshold's evidence of
    every gated metric after min_seconds; a gate is passed only with an approval."""
    ramp = Ramp.start(POLICY, 0.0)
    percent = ramp.percent
    for verdict in run(ramp, steps):
        if verdict.action != RampAction.ADVANCE:
            assert verdict.percent == percent
            continue
        assert verdict.to_percent == POLICY.rollout.steps[POLICY.rollout.steps.index(percent) + 1]
        if verdict.to_percent == 50.0:
            assert 50.0 in ramp.approved
        shown = verdict.evidence
        assert shown["seconds_at_step"] >= 30
        for name in METRICS:
            assert shown["metrics"][name]["samples"] >= 20
            assert shown["metrics"][name]["llr"] >= POLICY.evidence_threshold - 1e-3
        percent = verdict.percent


def _plain(verdicts: list[RampVerdict]) -> list[tuple[Any, ...]]:
    return [(v.action, v.percent, v.step, v.reason, v.to_percent, v.needed_events,
             orjson.dumps(v.evidence), v.announce) for v in verdicts]


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=100), st.integers(0, 100))
def test_a_state_round_trip_decides_the_same(steps: list[tuple[str, Any]], cut: int) -> None:
    """A ramp rebuilt from its bytes at any point gives the same verdicts as one never stored."""
    cut = min(cut, len(steps))
    kept = Ramp.start(POLICY, 0.0)
    expected = run(kept, steps)
    first = Ramp.start(POLICY, 0.0)
    before = run(first, steps[:cut])
    again = Ramp.from_dict(orjson.loads(orjson.dumps(first.to_dict())))
    assert again.to_dict() == first.to_dict()
    assert _plain(before + run(again, steps[cut:], start=cut)) == _plain(expected)
    assert again.to_dict() == kept.to_dict()
