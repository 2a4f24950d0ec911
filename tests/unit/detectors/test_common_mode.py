"""Shocks of every release: a canary is compared with the stable at the same moments."""

from __future__ import annotations

import heapq
from dataclasses import replace

import pytest

from bench.scenarios import Scenario, Shock, cutover_fleet
from rollguard.analysis.replay import replay_events
from rollguard.detectors.decision import Decision
from rollguard.detectors.events import Event
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.policy import default_policy


def decide(scenario: Scenario) -> list[Decision]:
    return replay_events(scenario.events(), default_policy())


SHOCKS = [  # metric, factor, minutes, events/s, candidate share
    ("error", 51.0, 3, 2.0, 0.3),
    ("error", 20.0, 20, 0.3, 0.5),
    ("error", 2.5, 8, 20.0, 0.1),
    ("latency_ms", 3.0, 10, 5.0, 0.25),
    ("latency_ms", 20.0, 2, 1.0, 0.4),
    ("hallucination", 8.0, 5, 10.0, 0.05),
    ("hallucination", 3.0, 15, 0.5, 0.3),
    ("cost_usd", 10.0, 4, 3.0, 0.2),
    ("cost_usd", 2.0, 20, 30.0, 0.02),
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("metric", "factor", "minutes", "rate", "share"), SHOCKS)
def test_a_shock_of_both_releases_is_charged_to_neither(
        metric: str, factor: float, minutes: float, rate: float, share: float,
        seed: int) -> None:
    """Errors, latency, hallucination or cost of both releases rising 2-50x for 2-20
    minutes, at any traffic and share: no rollback and no transient alert."""
    shock = Shock(metric, 1500.0 + 97 * seed, 60.0 * minutes, factor)
    scenario = Scenario(seed, rate=rate * share, stable_rate=rate * (1 - share),
                        duration=3600.0, shocks=(shock,))
    said = [(d.action, d.verdict, d.reason) for d in decide(scenario)
            if d.verdict != "inconclusive"]
    assert said == []


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("into", [0.4, 1.2, 2.5])
@pytest.mark.parametrize(("metric", "factor"), [("cost_usd", 11.3), ("latency_ms", 8.0)])
def test_the_bucket_a_shock_ends_in_is_still_compared_at_the_same_moments(
        metric: str, factor: float, into: float, seed: int) -> None:
    """A shock ending a second or two into a bucket: the stable's share of it may be calm
    enough to end the storm while the candidate's holds more of the shock; that bucket is
    still compared with the stable's, not with the history."""
    shock = Shock(metric, 1500.0, 240.0 + into, factor)
    scenario = Scenario(seed, rate=12.0, stable_rate=15.0, duration=2400.0, shocks=(shock,))
    assert [d.reason for d in decide(scenario) if d.verdict != "inconclusive"] == []


def test_without_the_comparison_at_the_same_moments_that_shock_is_a_rollback() -> None:
    """The same shock on the candidate alone is a regression: the guard still sees it."""
    scenario = Scenario(1, rate=2.0, stable_rate=6.0, duration=3600.0, metric="error",
                        magnitude=25.0, onset=900.0, blip=600.0)
    assert any(d.action == "rollback" for d in decide(scenario))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("metric", ["error", "latency_ms", "cost_usd"])
def test_a_regression_that_begins_during_a_shock_is_rolled_back_against_the_stable_then(
        metric: str, seed: int) -> None:
    """A 3x regression from the middle of a 15-minute 10x shock: rolled back, not before
    its onset, and the evidence says it was compared with the stable at the same moments
    when the verdict came during the shock."""
    shock = Shock(metric, 1200.0, 900.0, 10.0)
    scenario = Scenario(seed, rate=4.0, stable_rate=12.0, metric=metric, magnitude=3.0,
                        onset=1200.0, duration=3600.0, shocks=(shock,))
    rollbacks = [d for d in decide(scenario) if d.action == "rollback"]
    onset = scenario.truth().onset
    assert rollbacks and onset is not None and rollbacks[0].ts >= onset
    in_shock = rollbacks[0].ts < 1_790_000_000.0 + 2100.0
    assert rollbacks[0].evidence["baseline_from"] == ("concurrent" if in_shock else "history")


@pytest.mark.parametrize("seed", range(3))
def test_a_regression_after_a_shock_is_found_at_the_usual_delay(seed: int) -> None:
    """After the shock the history is what it was before it: a regression 10 minutes
    later is rolled back as soon (within a minute) as the same one without the shock."""
    calm = Scenario(seed, metric="error", magnitude=3.0, onset=1800.0, duration=3600.0)
    after = replace(calm, shocks=(Shock("error", 1200.0, 600.0, 10.0),))
    first = [d.ts for d in decide(calm) if d.action == "rollback"]
    second = [d.ts for d in decide(after) if d.action == "rollback"]
    assert first and second and abs(second[0] - first[0]) <= 60.0


def test_the_state_round_trips_in_the_middle_of_a_storm() -> None:
    """Writing and reading the state during a storm changes no later decision."""
    shock = Shock("latency_ms", 1500.0, 600.0, 5.0)
    scenario = Scenario(2, rate=3.0, stable_rate=9.0, metric="latency_ms", magnitude=3.0,
                        onset=1000.0, duration=2700.0, shocks=(shock,))
    events = list(scenario.events())
    policy = default_policy()

    def run(splits: range | list[int]) -> list[dict]:
        monitor, out = ServiceMonitor("chat", policy), []
        for i, event in enumerate(events):
            if i in splits:
                monitor = ServiceMonitor.from_bytes(monitor.to_bytes(), policy)
            out += [d.to_dict() for d in monitor.observe(event)]
        return out + [d.to_dict() for d in monitor.flush()]

    straight = run([])
    assert any(d["action"] == "rollback" for d in straight)
    assert run(range(0, len(events), 1013)) == straight


def merged(fleet: list[Scenario]) -> list[Event]:
    return list(heapq.merge(*(s.events() for s in fleet), key=lambda e: e.ts))


@pytest.mark.parametrize(("seed", "metric", "factor", "services"),
                         [(0, "error", 10.0, 12), (1, "latency_ms", 4.0, 6),
                          (2, "hallucination", 5.0, 8), (3, "cost_usd", 6.0, 5)])
def test_cutover_services_sharing_a_shock_are_one_fleet_incident_and_none_is_rolled_back(
        seed: int, metric: str, factor: float, services: int) -> None:
    fleet = cutover_fleet(seed, services, metric, factor, rate=3.0)
    decisions = replay_events(merged(fleet), default_policy())
    assert [d.service for d in decisions if d.action == "rollback"] == []
    alerts = [d for d in decisions if d.verdict == "fleet"]
    assert len(alerts) == 1
    named = alerts[0].evidence["fleet"]["services"]
    assert len(named) >= default_policy().fleet_min_services
    assert set(named) <= {s.service for s in fleet}


def test_a_lone_regression_in_a_shocked_cutover_fleet_is_still_rolled_back() -> None:
    fleet = cutover_fleet(4, 10, "error", 10.0, regressed=3)
    decisions = replay_events(merged(fleet), default_policy())
    assert {d.service for d in decisions if d.action == "rollback"} == {"svc-3"}


def test_too_few_cutover_services_moving_together_are_each_rolled_back() -> None:
    """Below fleet_min_services a shared shift is not an incident: each service stands
    alone, as a single cutover does."""
    fleet = cutover_fleet(5, 3, "error", 10.0, length=900.0)
    decisions = replay_events(merged(fleet), default_policy())
    assert {d.service for d in decisions if d.action == "rollback"} == {s.service
                                                                       for s in fleet}
    assert not [d for d in decisions if d.verdict in ("fleet", "held")]
