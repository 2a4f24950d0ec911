"""A replay of OTLP recordings in which the judges' results come long after the spans: on
the evaluations' own clock (detectors/lanes.py) they count; on one clock they would not."""

from __future__ import annotations

import dataclasses

import pytest

from rollguard.analysis.explain_lag import one_clock
from rollguard.analysis.replay import Replay
from rollguard.demo.scenario import Scenario
from rollguard.detectors.policy import Policy, default_policy
from tests.support.e2e import scenario_events
from tests.support.otlp_runs import otlp_values

HALLUCINATING = Scenario(rate=10.0, blip_s=0.0, duration=1200.0)
HEALTHY = dataclasses.replace(HALLUCINATING, regression_at=10**9)


@pytest.mark.parametrize("policy,rolled_back,too_late", [
    (default_policy(), {"bad"}, False),
    (one_clock(default_policy()), set(), True),
])
def test_a_recording_of_all_spans_then_all_evaluations_rolls_back_on_two_clocks(
        policy: Policy, rolled_back: set[str], too_late: bool) -> None:
    """Twenty minutes of spans first, then the judges' results of the same outputs (as a
    judge that lags, or a logs topic recorded after the spans' one): the regression seen
    only in the evaluations is rolled back, nothing is too late; on one clock the results
    are all too late and nothing is rolled back."""
    events = (scenario_events("bad", HALLUCINATING, seed=3)
              + scenario_events("good", HEALTHY, seed=4))
    values = otlp_values(events, "otlp_json", per_message=200)
    replay = Replay(policy)
    replay.feed_lines([*values["traces"], *values["logs"]])
    summary = replay.finish()
    assert {d.service for d in replay.decisions if d.action == "rollback"} == rolled_back
    assert (summary.too_late > 10_000) is too_late
    assert set(summary.rejected) == ({"too_late"} if too_late else set())
