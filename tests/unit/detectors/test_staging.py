"""Staged rollback in the pure core: which step is due, given time and verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from bench.scenarios import START, Scenario
from rollguard.analysis.replay import replay_events
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.errors import ConfigError
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.policy import Policy, RuleAction, Staging, policy_from_dict
from tests.support.policies import default_policy_document

STAGED = {"action": "staged", "steps": [10, 0], "step_seconds": 60, "recovery_seconds": 300}


def staged_policy(metric: str = "error", **changes: Any) -> Policy:
    raw = default_policy_document()
    raw["metrics"][metric].update({**STAGED, **changes})
    return policy_from_dict(raw)


def acting(decisions: list[Decision]) -> list[tuple[str, Any]]:
    return [(d.action, d.evidence.get("staged", {}).get("percent")) for d in decisions
            if d.action != DecisionAction.ALERT]


@pytest.mark.parametrize("seed", range(4))
def test_a_sustained_regression_is_cut_to_each_step_once_then_rolled_back(seed: int) -> None:
    """10 %, then 0 % (a rollback), each once, the second at least step_seconds later."""
    events = Scenario(seed, metric="error", magnitude=4.0, duration=2400).events()
    decisions = replay_events(events, staged_policy())
    assert acting(decisions) == [("stage", 10.0), ("rollback", 0.0)]
    cut, rollback = (d for d in decisions if d.action != DecisionAction.ALERT)
    assert rollback.ts - cut.ts >= 60.0 - 10.0  # decisions are stamped within a bucket
    assert cut.verdict == rollback.verdict == Verdict.SUSTAINED
    assert "cut to 10%" in cut.reason and "step 2 of 2" in rollback.reason


@pytest.mark.parametrize("seed", range(4))
def test_a_candidate_that_recovers_after_the_cut_gets_its_share_back(seed: int) -> None:
    """Worse for long enough to be cut, then as good as the baseline before the next step
    is due: restored after recovery_seconds, with the reason saying it was the traffic."""
    events = Scenario(seed, metric="error", magnitude=5.0, blip=600.0,
                      duration=3600).events()
    monitor = ServiceMonitor("chat", staged_policy(step_seconds=1200))
    decisions = []
    for event in events:
        monitor.set_roles("stable-1", "candidate-2", 1, share=25.0)
        decisions += monitor.observe(event)
    assert acting(decisions) == [("stage", 10.0), ("restore", 10.0)]
    restore = next(d for d in decisions if d.action == DecisionAction.RESTORE)
    assert restore.evidence["staged"]["restore_percent"] == 25.0
    assert restore.evidence["calm_seconds"] >= 300.0
    assert "the traffic, not the release" in restore.reason


def test_healthy_candidates_are_never_cut() -> None:
    for seed in range(4):
        events = Scenario(seed, duration=2400).events()
        assert acting(replay_events(events, staged_policy())) == []


def test_a_staged_composite_cuts_in_steps() -> None:
    raw = default_policy_document()
    for name in ("hallucination", "accuracy", "complaint"):
        raw["metrics"][name]["critical"] = False
    raw["composites"][0].update(STAGED)
    events = Scenario(2, metric="accuracy", also=("hallucination",), magnitude=3.0,
                      duration=2400).events()
    decisions = replay_events(events, policy_from_dict(raw))
    assert acting(decisions) == [("stage", 10.0), ("rollback", 0.0)]
    assert all(d.evidence["staged"]["rule"] == "quality" for d in decisions
               if d.action != DecisionAction.ALERT)


def test_a_stage_in_progress_survives_a_round_trip_of_the_state() -> None:
    """Written and read back between the cut and the next step: the same decisions."""
    policy = staged_policy()
    events = list(Scenario(3, metric="error", magnitude=4.0, duration=2400).events())
    straight = replay_events(events, policy)
    cut = next(d for d in straight if d.action == DecisionAction.STAGE)
    monitor = ServiceMonitor("chat", policy)
    decisions: list[Decision] = []
    written = 0.0
    for event in events:
        decisions += monitor.observe(event)
        # once a second of event time while the stage is on, as a worker's checkpoints would
        if (event.ts > max(cut.ts + 20, written + 1) and monitor.candidate
                and monitor.candidate.stage):
            written = event.ts
            monitor = ServiceMonitor.from_bytes(monitor.to_bytes(), policy)
    decisions += monitor.flush()
    assert [d.to_dict() for d in decisions] == [d.to_dict() for d in straight]


@pytest.mark.parametrize(("changes", "problem"), [
    ({"steps": [0, 10]}, "steps"), ({"steps": [50, 10]}, "steps"), ({"steps": []}, "steps"),
    ({"steps": [100, 0]}, "steps"), ({"recovery_seconds": 0}, "recovery_seconds"),
    ({"action": "rollback"}, "only with action: staged"),
])
def test_bad_staging_settings_are_named(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        staged_policy(**changes)


def test_staging_defaults() -> None:
    rule = staged_policy(steps=[25, 5, 0]).metrics["error"]
    assert rule.action is RuleAction.STAGED and rule.staging.steps == (25.0, 5.0, 0.0)
    assert staged_policy().metrics["latency_ms"].staging == Staging()
    assert START > 0
