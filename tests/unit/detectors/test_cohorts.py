"""Cohorts: a stratified aggregate (a shifted mix never rolls back), per-cohort tests with a
Bonferroni-raised threshold, a cap on cohorts tracked, and the policy's cohort_action."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any

import pytest

from bench.scenarios import Cohort, Scenario, cohort_scenarios, cohort_truth, dirty, to_lines
from rollguard.analysis.replay import replay_events
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.errors import ConfigError
from rollguard.detectors.events import Event
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.policy import Policy, RuleAction, default_policy, policy_from_dict
from tests.support.policies import default_policy_document
from tests.support.streams import replay_lines

SEEDS = range(3)
NAMES = [s.name for s in cohort_scenarios(0)]


@lru_cache(maxsize=64)
def events_of(seed: int, name: str) -> tuple[Event, ...]:
    return tuple(next(s for s in cohort_scenarios(seed) if s.name == name).events())


def policy_with(**error: Any) -> Policy:
    raw = default_policy_document()
    raw["metrics"]["error"].update(error)
    return policy_from_dict(raw)


def cohort_findings(decisions: list[Decision]) -> list[Decision]:
    return [d for d in decisions if d.verdict == Verdict.SUSTAINED and "cohort" in d.evidence]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", NAMES)
def test_cohort_scenarios_roll_back_only_where_the_aggregate_is_worse(seed: int,
                                                                      name: str) -> None:
    """No rollback where the candidate is not worse overall (a shifted mix, different base
    rates, many small cohorts, a small cohort's regression); no cohort but the worse one is
    named; it is found where it must be, named in the reason and the evidence, as an alert."""
    scenario = next(s for s in cohort_scenarios(seed) if s.name == name)
    allowed, cohort, must_find = cohort_truth(scenario)
    decisions = replay_events(events_of(seed, name), default_policy())
    rollbacks = [d for d in decisions if d.action == DecisionAction.ROLLBACK]
    assert allowed or not rollbacks, rollbacks
    findings = cohort_findings(decisions)
    assert {d.evidence["cohort"] for d in findings} <= {cohort}
    assert len(findings) <= 1 and (findings or not must_find)
    for finding in findings:
        assert f"cohort {cohort!r}" in finding.reason
        assert finding.action == DecisionAction.ALERT
        assert finding.evidence["threshold"] > default_policy().evidence_threshold


def test_without_stratification_the_shifted_mix_would_roll_back() -> None:
    """The same events with their cohorts removed: the aggregate alone is worse (Simpson's
    paradox), so the stratification is what keeps the candidate."""
    plain = [Event(e.event_id, e.ts, e.service, e.release, "", e.metrics)
             for e in events_of(0, "mix-shift")]
    assert [d.action for d in replay_events(plain, default_policy())] == ["rollback"]
    assert "rollback" not in [d.action for d in replay_events(events_of(0, "mix-shift"),
                                                              default_policy())]


@pytest.mark.parametrize(("action", "expected"), [
    ("rollback", DecisionAction.ROLLBACK), ("staged", DecisionAction.STAGE),
])
def test_the_cohort_action_decides_what_a_cohort_finding_does(
        action: str, expected: DecisionAction) -> None:
    decisions = replay_events(events_of(1, "cohort-0.1-x6"), policy_with(cohort_action=action))
    finding = next(d for d in decisions if d.action != DecisionAction.ALERT)
    assert finding.action == expected and finding.evidence["cohort"] == "ja"
    assert "cohort 'ja'" in finding.reason


def test_a_staged_cohort_finding_is_cut_then_rolled_back() -> None:
    decisions = replay_events(events_of(2, "cohort-0.25-x6"), policy_with(
        cohort_action="staged", steps=[10, 0], step_seconds=60))
    acted = [(d.action, d.evidence.get("cohort")) for d in decisions
             if d.action != DecisionAction.ALERT]
    assert acted == [("stage", "ja"), ("rollback", "ja")]


def test_cohorts_beyond_the_cap_are_pooled_as_other() -> None:
    monitor = ServiceMonitor("chat", default_policy())
    for event in events_of(0, "many-small")[:20_000]:
        monitor.observe(event)
    strata = monitor._strata
    assert strata is not None and len(strata.names) == default_policy().max_cohorts - 1
    assert monitor.candidate is not None
    assert set(monitor.candidate.cohort_tracks) <= {*strata.names, "other"}
    assert "other" in monitor.candidate.cohort_tracks


@pytest.mark.parametrize("name", ["mix-shift", "cohort-0.25-x6"])
def test_cohort_state_survives_round_trips(name: str) -> None:
    """Written and read back every few hundred events: the same decisions as straight."""
    events = events_of(1, name)
    straight = replay_events(events, default_policy())
    monitor = ServiceMonitor("chat", default_policy())
    decisions: list[Decision] = []
    for i, event in enumerate(events):
        decisions += monitor.observe(event)
        if i % 997 == 0:
            monitor = ServiceMonitor.from_bytes(monitor.to_bytes(), default_policy())
    decisions += monitor.flush()
    assert [d.to_dict() for d in decisions] == [d.to_dict() for d in straight]


def test_services_without_cohorts_keep_no_cohort_state() -> None:
    monitor = ServiceMonitor("chat", default_policy())
    for event in Scenario(0, duration=900).events():
        monitor.observe(event)
    assert monitor._strata is None


@pytest.mark.parametrize(("raw", "problem"), [
    ({"max_cohorts": 1}, "max_cohorts"), ({"max_cohorts": 100}, "max_cohorts"),
])
def test_bad_cohort_settings_are_named(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        policy_from_dict({"metrics": {"error": {"statistic": "rate", "tolerance": 0.01}},
                          **raw})
    with pytest.raises(ConfigError, match="cohort_action"):
        policy_with(cohort_action="approve")
    assert policy_with().metrics["error"].cohort_action is RuleAction.ALERT
    assert Cohort("x", 1.0).candidate_share is None


@pytest.mark.parametrize("name", ["mix-shift", "many-small"])
def test_cohort_lines_counted_in_batches_decide_exactly_as_one_by_one(name: str) -> None:
    """Blocks of a release's cohort arrive a release at a time: the strata still hold what
    the events one by one would (the first cohort starts them with the bucket so far)."""
    scenario = next(s for s in cohort_scenarios(4) if s.name == name)
    short = dataclasses.replace(scenario, duration=1500.0, cohorts=(
        Cohort("", 0.3), *scenario.cohorts[1:]))  # some events without a cohort
    lines = dirty(to_lines(short.events()), 4, invalid=0.01, duplicates=0.02, jitter=6.0)
    assert replay_lines(lines, batched=True) == replay_lines(lines, batched=False)
