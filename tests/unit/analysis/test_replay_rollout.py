"""``rollguard replay --rollout``: the same ramp verdicts as the worker on the same events.

The worker is its partition loop (streams/partition.py) on a pointer in memory, each command
it sends planned on that pointer at once by the real planner; the candidate's traffic is the
share the pointer gives it. The events it read go to the replay as recorded lines."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from rollguard.actions.commands import Command, new_command, sign
from rollguard.actions.plan import plan
from rollguard.actions.planned import Change
from rollguard.actions.releases import Release
from rollguard.actions.rollout import share_of_release
from rollguard.actions.state import PointerState
from rollguard.analysis.replay import Replay
from rollguard.analysis.replay_rollout import RolloutSpec
from rollguard.cli import main
from rollguard.demo.scenario import RELEASES, Scenario
from rollguard.detectors.policy import policy_from_dict
from rollguard.detectors.rollout_plan import plan_document
from rollguard.streams.partition import PartitionLoop
from tests.support.policies import default_policy_document

T0 = 1_763_856_000.0
START = T0 + 300.0  # the stable release's history first
RATE = 20.0
SECRET = b"s"
PLAN = {"steps": [20, 60, 100], "min_seconds": 30, "min_samples": 30, "limit_seconds": 3000,
        "bake_seconds": 30}
GOOD = Scenario(regression_at=float("inf"), blip_s=0.0)
BAD = Scenario(deploy_at=0.0, regression_at=0.0, blip_s=0.0, hallucination_jump=0.3)
RELEASED = {name: Release(name, components) for name, components in RELEASES.items()}


def rollout_document() -> dict[str, Any]:
    raw = default_policy_document()
    raw["metrics"]["hallucination"]["tolerance"] = 0.05
    for name in ("error", "complaint"):
        raw["metrics"][name]["tolerance"] = 0.03
    return {**raw, "rollout": PLAN}


POLICY = policy_from_dict(rollout_document())


@dataclass
class Worker:
    """The worker's pure part on one service: a message per event, the pointer in memory."""

    scenario: Scenario
    seed: int
    state: PointerState = field(
        default_factory=lambda: PointerState("bot", "v1", "v1", 1, dict(RELEASES["v1"])))
    now: float = T0
    lines: list[bytes] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.loop: PartitionLoop[int] = PartitionLoop(POLICY, SECRET, lambda _: None,
                                                      clock=lambda: self.now)

    def apply(self, command: Command) -> None:
        planned = plan(self.state, command, RELEASED, self.now)
        if isinstance(planned, Change):
            self.state = planned.state

    def run(self, seconds: float) -> None:
        rng = random.Random(self.seed)
        for i in range(int(seconds * RATE)):
            self.now = t = T0 + i / RATE
            if t >= START and self.state.rollout is None and self.state.stable == "v1" \
                    and self.state.active == "v1" and self.state.candidate is None \
                    and not any(v["action"] == "abort" for v in self.verdicts):
                self.apply(sign(new_command("bot", "rollout_start", "ann", t, release="v2",
                                            evidence={"plan": plan_document(POLICY.rollout)}),
                                SECRET))
            share = share_of_release(self.state, "v2")
            release = "v2" if rng.random() * 100 < share else "v1"
            event = {"event_id": f"e{i}", "ts": t, "service": "bot", "release": release,
                     "metrics": self.scenario.metrics(RELEASES[release], t - T0, rng)}
            line = orjson.dumps(event)
            self.lines.append(line)
            out = self.loop.on_message(0, i, b"bot", line, self.state, t, i)
            self.verdicts += [r for r in map(orjson.loads, out.audit)
                              if r.get("type") == "rollout"]
            for raw in out.commands:
                self.apply(Command.from_bytes(orjson.dumps(orjson.loads(raw)["command"])))


def replayed(lines: list[bytes]) -> list[dict[str, Any]]:
    told: list[dict[str, Any]] = []
    run = Replay(POLICY, rollout=RolloutSpec("v2", POLICY.rollout, START), on_ramp=told.append)
    run.feed_lines(lines)
    run.finish()
    assert run.summary.ramp is not None and sum(run.summary.ramp.values()) == len(told)
    return told


def sequence(verdicts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(v["action"], v["percent"], v["step"], v["to_percent"], v["at"], v["reason"])
            for v in verdicts]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replay_moves_a_good_release_to_stable_as_the_worker_does(seed: int) -> None:
    worker = Worker(GOOD, seed)
    worker.run(900.0)
    assert (worker.state.active, worker.state.stable, worker.state.rollout) == ("v2", "v2", None)
    moves = [(v["action"], v["percent"]) for v in worker.verdicts
             if v["action"] in ("advance", "stable")]
    assert moves == [("advance", 60.0), ("advance", 100.0), ("stable", 100.0)]
    assert sequence(replayed(worker.lines)) == sequence(worker.verdicts)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replay_aborts_a_bad_release_at_its_first_step_as_the_worker_does(seed: int) -> None:
    worker = Worker(BAD, seed)
    worker.run(600.0)
    assert (worker.state.active, worker.state.candidate, worker.state.rollout) == (
        "v1", None, None)
    actions = [(v["action"], v["percent"]) for v in worker.verdicts if v["action"] != "wait"]
    assert ("abort", 20.0) in actions and "advance" not in {a for a, _ in actions}
    assert sequence(replayed(worker.lines)) == sequence(worker.verdicts)


def test_the_replay_command_prints_ramp_verdicts_beside_decisions(tmp_path: Path) -> None:
    worker = Worker(GOOD, 4)
    worker.run(900.0)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(worker.lines) + b"\n")
    policy = tmp_path / "rollout.yaml"
    policy.write_text(yaml.safe_dump(rollout_document(), sort_keys=False))
    result = CliRunner().invoke(main, ["replay", str(events), "--policy", str(policy),
                                       "--rollout", "v2", "--rollout-start", str(START)])
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    told = [line for line in lines if line.get("type") == "rollout"]
    assert sequence(told) == sequence(worker.verdicts)
    assert "ramp verdicts: 6 (advance: 2, stable: 1, wait: 3)" in result.stderr
    assert "not applied" not in result.stderr  # every move planned on the replay's pointer


def test_the_replay_command_needs_a_release_for_a_rollout_start(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("")
    result = CliRunner().invoke(main, ["replay", str(events), "--rollout-start", "1"])
    assert result.exit_code == 1 and "--rollout-start" in result.stderr


def test_without_a_start_the_replayed_rollout_begins_with_the_releases_first_event() -> None:
    worker = Worker(GOOD, 5)
    worker.run(900.0)
    first = next(orjson.loads(line)["ts"] for line in worker.lines
                 if orjson.loads(line)["release"] == "v2")
    told: list[dict[str, Any]] = []
    run = Replay(POLICY, rollout=RolloutSpec("v2", POLICY.rollout), on_ramp=told.append)
    run.feed_lines(worker.lines)
    assert [(v["action"], v["percent"]) for v in told if v["action"] != "wait"] == [
        ("advance", 60.0), ("advance", 100.0), ("stable", 100.0)]
    assert told[0]["at"] >= first
    assert run.rollout is not None and run.rollout.pointers["bot"].stable == "v2"
