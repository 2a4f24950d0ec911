"""Actions, composites and inconclusive verdicts, each from a policy's point of view."""

from __future__ import annotations

import orjson

from bench.scenarios import START, Scenario
from rollguard.analysis.replay import replay_events
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.events import Event
from rollguard.detectors.policy import Policy, RuleAction, default_policy, policy_from_dict
from tests.support.policies import default_policy_document


def policy_with(edit: dict[str, dict]) -> Policy:
    """The default policy with some metrics' settings changed."""
    raw = default_policy_document()
    for name, changes in edit.items():
        raw["metrics"][name].update(changes)
    return policy_from_dict(raw)


def test_approve_action_asks_for_a_person() -> None:
    """Policy action `approve` gives a rollback decision that requires approval."""
    policy = policy_with({"latency_ms": {"action": "approve"}})
    events = Scenario(0, metric="latency_ms", magnitude=4.0, duration=1500).events()
    [decision] = [d for d in replay_events(events, policy) if d.action == "rollback"]
    assert decision.requires_approval and not decision.dry_run


def test_actions_and_verdicts_are_typed_and_encode_as_their_names() -> None:
    """A policy's actions and a decision's action and verdict are enum members whose JSON is
    the plain word the wire format documents."""
    policy = policy_with({"latency_ms": {"action": "dry-run"}})
    assert policy.metrics["latency_ms"].action is RuleAction.DRY_RUN
    events = Scenario(0, metric="latency_ms", magnitude=4.0, duration=1500).events()
    decision = next(d for d in replay_events(events, policy) if d.verdict == "sustained")
    assert (decision.action, decision.verdict) == (DecisionAction.ROLLBACK, Verdict.SUSTAINED)
    assert orjson.loads(orjson.dumps(decision.to_dict()))["action"] == "rollback"


def test_dry_run_is_reported_and_does_not_end_the_candidate() -> None:
    """A dry-run rollback is reported, and a real rollback can still follow for another metric."""
    policy = policy_with({"cost_usd": {"action": "dry-run"}})
    events = Scenario(0, metric="cost_usd", also=("error",), magnitude=4.0,
                      duration=2400).events()
    rollbacks = [d for d in replay_events(events, policy) if d.action == "rollback"]
    assert [(d.evidence["metric"], d.dry_run) for d in rollbacks] == [("cost_usd", True),
                                                                      ("error", False)]


def test_alert_action_never_rolls_back() -> None:
    """A sustained regression of a metric whose action is `alert` only alerts."""
    policy = policy_with({"error": {"action": "alert"}})
    decisions = replay_events(Scenario(1, metric="error", magnitude=6.0, duration=1800).events(),
                              policy)
    assert [(d.action, d.verdict) for d in decisions] == [("alert", "sustained")]


def test_composite_acts_when_two_signals_are_worse_together() -> None:
    """Two non-critical signals alone only alert; both at once trip the composite rule."""
    soft = {"critical": False}
    policy = policy_with({"hallucination": soft, "accuracy": soft, "complaint": soft})
    alone = replay_events(Scenario(2, metric="accuracy", magnitude=3.0, duration=1800)
                          .events(), policy)
    assert all(d.action == "alert" for d in alone) and alone
    both = replay_events(Scenario(2, metric="accuracy", also=("hallucination",), magnitude=3.0,
                                  duration=1800).events(), policy)
    rollbacks = [d for d in both if d.action == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0].evidence["metric"] == "quality"


def _without(events: list[Event], metric: str, after: float) -> list[Event]:
    return [Event(e.event_id, e.ts, e.service, e.release, e.cohort,
                  {k: v for k, v in e.metrics.items() if k != metric}
                  if e.ts > after and e.release != "stable-1" else e.metrics)
            for e in events]


def _verdicts(decisions: list[Decision]) -> list[tuple[str, str, str]]:
    return [(d.action, d.verdict, d.evidence.get("metric", "")) for d in decisions]


def test_a_metric_that_stops_arriving_is_inconclusive_not_a_rollback() -> None:
    """When the candidate stops sending a metric, that is said once, as an alert."""
    events = list(Scenario(3, metric="error", magnitude=4.0, onset=900, duration=2400).events())
    decisions = replay_events(_without(events, "error", START + 600 + 600), default_policy())
    [notice] = [d for d in decisions if d.verdict == "inconclusive"]
    assert notice.action == "alert" and notice.evidence["metrics"]["error"]["why"] == "stopped"
    assert "error rate (stopped arriving 5 min ago)" in notice.reason
    assert not [d for d in decisions if d.action == "rollback"]


def test_too_little_data_is_inconclusive_not_a_rollback() -> None:
    """A candidate with a trickle of traffic gets inconclusive alerts, never a rollback."""
    events = Scenario(4, rate=0.02, metric="error", magnitude=10.0, duration=4200).events()
    decisions = replay_events(events, default_policy())
    assert decisions and all(d.verdict == "inconclusive" and d.action == "alert"
                             for d in decisions)
