"""The worker's side of a guarded rollout (actions/ramping.py), driven by the real monitor on
simulated events, its commands applied to an in-memory pointer by the real planner."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from rollguard.actions.commands import Command, new_command, sign
from rollguard.actions.plan import plan
from rollguard.actions.planned import Change
from rollguard.actions.ramping import steer
from rollguard.actions.releases import Release
from rollguard.actions.respond import respond, roles_of
from rollguard.actions.rollout import rollout_of, share_of_release
from rollguard.actions.state import PointerState
from rollguard.demo.scenario import RELEASES, Scenario
from rollguard.detectors.events import Event
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.monitors import MonitorSet
from rollguard.detectors.policy import Policy, policy_from_dict
from tests.support.policies import default_policy_document

T0 = 1_763_856_000.0
SECRET = b"s"
RATE = 20.0
HEALTHY = Scenario(regression_at=float("inf"), blip_s=0.0)
PLAN = {"steps": [20, 60, 100], "min_seconds": 30, "min_samples": 30, "limit_seconds": 3000,
        "bake_seconds": 30}
RELEASED = {name: Release(name, components) for name, components in RELEASES.items()}


def rollout_policy(**plan: Any) -> Policy:
    raw = default_policy_document()
    raw["metrics"]["hallucination"]["tolerance"] = 0.05
    for name in ("error", "complaint"):
        raw["metrics"][name]["tolerance"] = 0.03
    raw["rollout"] = {**PLAN, **plan}
    return policy_from_dict(raw)


def person(op: str, state: PointerState, by: str = "ann", **fields: Any) -> Command:
    return sign(new_command("bot", op, by, 0.0, **fields), SECRET)  # type: ignore[arg-type]


@dataclass
class Sim:
    """One service: v1 stable, its events at the share the pointer gives v2."""

    policy: Policy
    state: PointerState = field(
        default_factory=lambda: PointerState("bot", "v1", "v1", 1, dict(RELEASES["v1"])))
    t: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(3))
    commands: list[Command] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    saved: bytes | None = None  # the monitor's checkpoint to restore it from

    def __post_init__(self) -> None:
        self.monitors = MonitorSet(self.policy, restore=lambda _: self.saved)

    @property
    def monitor(self) -> ServiceMonitor:
        monitor = self.monitors.get("bot")
        assert monitor is not None
        return monitor

    def apply(self, command: Command) -> None:
        planned = plan(self.state, command, RELEASED, 0.0)
        if isinstance(planned, Change):
            self.state = planned.state

    def start(self, **evidence: Any) -> None:
        self.apply(person("rollout_start", self.state, release="v2",
                          evidence={"plan": {**PLAN, **evidence}}))

    def serve(self, seconds: float, apply: bool = True) -> None:
        for _ in range(int(seconds * RATE)):
            share = share_of_release(self.state, "v2")
            release = "v2" if self.rng.random() * 100 < share else "v1"
            event = Event(f"e{self.t}", T0 + self.t, "bot", release, "",
                          HEALTHY.metrics(RELEASES[release], self.t, self.rng))
            self.t += 1 / RATE
            fed = self.monitors.feed([(event, {}, None)], "bot", roles_of(self.state))
            for decision in fed.decisions:
                response = respond(decision, self.state, 0.0, SECRET)
                if isinstance(response, Command) and apply:
                    self.apply(response)
            steered = steer(self.monitor, self.state, 0.0, SECRET, 300.0)
            self.records += steered.records
            self.commands += steered.commands
            for command in steered.commands:
                if apply:
                    self.apply(command)

    def told(self) -> list[tuple[str, float]]:
        return [(r["action"], r["percent"]) for r in self.records if r["action"] != "wait"]


def warmed(**plan: Any) -> Sim:
    sim = Sim(rollout_policy(**plan))
    sim.serve(300.0)  # the stable release's history first
    sim.start(**plan)
    return sim


def test_a_good_release_is_moved_step_by_step_then_marked_stable() -> None:
    """Each move is a compare-and-set on the epoch it was decided at, one idempotency key
    per rollout and step; after the bake the release is marked stable."""
    sim = warmed()
    sim.serve(600.0)
    assert (sim.state.active, sim.state.stable, sim.state.rollout) == ("v2", "v2", None)
    assert sim.told() == [("advance", 60.0), ("advance", 100.0), ("stable", 100.0)]
    ramps = [c for c in sim.commands if c.op == "ramp"]
    assert [(c.percent, c.evidence["from"], c.issued_by) for c in ramps] == [
        (60.0, 20.0, "rule:rollout"), (100.0, 60.0, "rule:rollout")]
    assert all(c.expected_epoch is not None for c in sim.commands)
    assert [c.idempotency_key.rsplit(":", 2)[1:] for c in ramps] == [["step", "2"],
                                                                     ["step", "3"]]
    assert sim.commands[-1].op == "mark_stable" and sim.monitor.rollout is None


def test_a_restarted_worker_resumes_the_step_with_its_evidence_and_never_moves_twice() -> None:
    """Restored from its checkpoint, the monitor's ramp is where it was, with its evidence;
    restored from before a move that did apply (a crash before the next checkpoint), it
    takes the pointer's step and never sends that move again."""
    sim = warmed()
    sim.serve(40.0)  # some evidence at 20 %, not enough to pass
    saved, at = sim.monitor.to_bytes(), sim.t
    run = sim.monitor.rollout
    assert run is not None and run.ramp.tallies
    restored = ServiceMonitor.from_bytes(saved, sim.policy)
    assert restored.rollout is not None and restored.measure_ramp
    assert restored.rollout.to_dict() == run.to_dict()
    sim.serve(150.0)
    assert [c.percent for c in sim.commands if c.op == "ramp"] == [60.0]
    replay = Sim(sim.policy, state=sim.state, t=at, saved=saved)
    replay.serve(300.0, apply=False)
    assert 60.0 not in [c.percent for c in replay.commands if c.op == "ramp"]
    first = next(r for r in replay.records if r["action"] == "wait")
    assert "the pointer moved it to 60%" in first["reason"]


def test_a_pinned_service_is_held_where_it_is_and_told_once() -> None:
    sim = warmed()
    sim.apply(person("pin", sim.state))
    sim.serve(300.0)
    assert (sim.state.candidate, sim.state.percent) == ("v2", 20.0)
    assert sim.commands == [] and sim.told() == [("hold", 20.0)]
    held = next(r for r in sim.records if r["action"] == "hold")
    assert "is pinned: the rollout holds at 20%" in held["reason"]


def test_a_pause_by_a_person_stops_the_ramp_and_a_resume_judges_the_step_afresh() -> None:
    sim = warmed()
    sim.apply(person("rollout_pause", sim.state, by="bo"))
    sim.serve(200.0)
    assert sim.commands == [] and ("pause", 20.0) in sim.told()
    assert "paused by bo" in next(r["reason"] for r in sim.records if r["action"] == "pause")
    sim.apply(person("rollout_resume", sim.state))
    sim.serve(20.0)
    assert sim.commands == []  # judged afresh: min_seconds from the resume
    sim.serve(200.0)
    assert [c.percent for c in sim.commands if c.op == "ramp"][:1] == [60.0]


def test_a_step_not_decided_within_its_limit_with_on_limit_abort_is_rolled_back() -> None:
    """No rule decided anything, so the rollout's own rollback ends it."""
    sim = warmed(limit_seconds=31, min_samples=100_000, on_limit="abort")
    sim.serve(120.0)
    assert ("abort", 20.0) in sim.told()
    assert [c.op for c in sim.commands] == ["rollback"]
    assert (sim.state.active, sim.state.candidate, rollout_of(sim.state)) == ("v1", None, None)


def test_a_move_that_did_not_apply_puts_the_ramp_back_on_the_pointers_step() -> None:
    sim = warmed()
    sim.serve(200.0, apply=False)  # the move is sent, the pointer never shows it
    assert [c.percent for c in sim.commands if c.op == "ramp"] == [60.0]
    sim.apply(person("rollout_pause", sim.state))  # the epoch moves: the move conflicts
    sim.apply(person("rollout_resume", sim.state))
    sim.serve(10.0)
    run = sim.monitor.rollout
    assert run is not None and (run.ramp.step, run.sent_epoch) == (0, 0)
