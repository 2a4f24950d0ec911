"""Guarded rollouts end to end on the real broker and Redis: a good release is taken through
its steps to 100 % and marked stable, a bad one is rolled back at its first step, a person
pauses, resumes and aborts through the CLI, and a pin stops the movement.

Event time runs fast: the simulated service serves ``CHUNK_S`` seconds of events at the
share the pointer gives its candidate, the test waits until the worker has committed them
(and carried out what they made it send), reads the pointer, and serves the next chunk.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollguard.actions.commands import new_command, sign
from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import PointerStore
from rollguard.actions.rollout import rollout_of, share_of_release
from rollguard.actions.state import PointerState
from rollguard.demo.run import prepare_service
from rollguard.demo.scenario import RELEASES, Scenario
from rollguard.streams.connect import prepare_topics
from tests.support.e2e import (
    T0,
    fixture_run,
    new_service,
    produce,
    read_topic,
    send_commands,
    stop,
    wait_for_audit,
)
from tests.support.pointer import message
from tests.support.policies import default_policy_document
from tests.support.runs import IsolatedRun, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]
__all__ = ["fixture_run"]

RATE = 20.0  # events per simulated second, both releases together
WARMUP_S = 300.0  # the stable release alone first: its history is the baseline
CHUNK_S = 60.0
PLAN = {"steps": [20, 60, 100], "min_seconds": 30, "min_samples": 30, "limit_seconds": 3000,
        "bake_seconds": 30}
HEALTHY = Scenario(regression_at=float("inf"), blip_s=0.0)
REGRESSING = Scenario(regression_at=0.0, blip_s=0.0)


def rollout_policy(tmp_path: Path, plan: dict[str, Any] | None = None) -> str:
    """The default policy with looser tolerances on the rare binary metrics (so that a step
    is shown no worse within a few simulated minutes) and the plan above (or ``plan``)."""
    raw = default_policy_document()
    raw["metrics"]["hallucination"]["tolerance"] = 0.05
    for name in ("error", "complaint"):
        raw["metrics"][name]["tolerance"] = 0.03
    raw["rollout"] = plan or PLAN
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


class Service:
    """The simulated service: its events follow the pointer's share, chunk by chunk."""

    def __init__(self, run: IsolatedRun, store: PointerStore, name: str,
                 scenario: Scenario, rate: float = RATE) -> None:
        self.run, self.store, self.name, self.scenario = run, store, name, scenario
        self.rate = rate
        self.t, self.serial, self.rng = 0.0, 0, random.Random(11)

    async def serve(self, seconds: float, share: float) -> None:
        """``seconds`` of events with v2 on ``share`` percent, then wait until the worker
        committed them and carried out every command they made it send."""
        events: list[dict[str, Any]] = []
        for _ in range(int(seconds * self.rate)):
            release = "v2" if self.rng.random() * 100 < share else "v1"
            events.append({"event_id": f"{self.name}-{self.serial}", "ts": T0 + self.t,
                           "service": self.name, "release": release,
                           "metrics": self.scenario.metrics(RELEASES[release], self.t,
                                                            self.rng)})
            self.serial += 1
            self.t += 1 / self.rate
        await produce(self.run, events)
        await wait_processed(self.run)

    async def follow(self, until: Any, chunks: int) -> PointerState:
        """Serve chunks at the pointer's share until ``until(pointer)`` holds."""
        for _ in range(chunks):
            state = await self.store.read(self.name)
            if until(state):
                return state
            await self.serve(CHUNK_S, share_of_release(state, "v2"))
        state = await self.store.read(self.name)
        assert until(state), f"after {chunks} chunks: {state}"
        return state


async def started(run: IsolatedRun, tmp_path: Path, scenario: Scenario, rate: float = RATE,
                  plan: dict[str, Any] | None = None) -> tuple[Service, PointerStore, Any]:
    """A service with v1 stable, its warm-up served, a worker, and the rollout of v2
    started by an operator."""
    name = new_service()
    await prepare_topics(run.settings())
    store = PointerStore(async_redis_client(), run.secret.encode())
    await prepare_service(store, name, run.secret.encode())
    policy = rollout_policy(tmp_path, plan)
    worker = run.start_worker(ROLLGUARD_POLICY=policy)
    service = Service(run, store, name, scenario, rate)
    await service.serve(WARMUP_S, 0.0)
    cli(run, "rollout", "start", name, "v2", "--by", "ann", "--policy", policy)
    return service, store, worker


def cli(run: IsolatedRun, *args: str) -> str:
    """`rollguard ...` as a person runs it, with the run's Redis and secret."""
    done = subprocess.run([sys.executable, "-m", "rollguard", *args], env=run.env(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def moves(history: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(op, issued_by, outcome) of the rollout's commands, oldest first."""
    return [(h["op"], h["issued_by"], h["outcome"]) for h in history
            if h["op"] in ("ramp", "mark_stable", "rollback") or h["op"].startswith("rollout")]


async def test_a_good_release_ramps_through_its_steps_and_is_marked_stable(
        run: IsolatedRun, tmp_path: Path) -> None:
    service, store, worker = await started(run, tmp_path, HEALTHY)
    try:
        seen: list[float] = []

        def stable(state: PointerState) -> bool:
            seen.append(share_of_release(state, "v2"))
            return state.stable == "v2"

        state = await service.follow(stable, chunks=20)
    finally:
        stop(worker)
    assert (state.active, state.stable, state.candidate, state.rollout) == (
        "v2", "v2", None, None)
    assert sorted(set(seen)) == [20.0, 60.0, 100.0]
    assert moves(await store.history(service.name)) == [
        ("rollout_start", "ann", "applied"),
        ("ramp", "rule:rollout", "applied"), ("ramp", "rule:rollout", "applied"),
        ("mark_stable", "rule:rollout", "applied")]
    audit = await read_topic(run.topic("audit"))
    told = [(a["action"], a["percent"]) for a in audit
            if a.get("type") == "rollout" and a["action"] != "wait"]
    assert told == [("advance", 60.0), ("advance", 100.0), ("stable", 100.0)]


async def test_a_bad_release_is_rolled_back_at_the_first_step(
        run: IsolatedRun, tmp_path: Path) -> None:
    service, store, worker = await started(run, tmp_path, REGRESSING)
    try:
        state = await service.follow(lambda s: s.rollout is None, chunks=20)
    finally:
        stop(worker)
    assert (state.active, state.stable, state.candidate) == ("v1", "v1", None)
    history = moves(await store.history(service.name))
    assert [op for op, _, outcome in history if outcome == "applied"] == [
        "rollout_start", "rollback"]
    assert history[-1][1].startswith("rule:") and "ramp" not in [op for op, _, _ in history]


async def test_a_step_too_thin_to_decide_in_its_limit_holds_and_says_how_much_it_needs(
        run: IsolatedRun, tmp_path: Path) -> None:
    """2 events/s in all, 0.4/s of them the candidate's at 20 %: 400 samples a metric take
    1,000 s, past the step's 600 s limit; the step holds (the policy's on_limit: hold)."""
    thin = {**PLAN, "min_samples": 400, "limit_seconds": 600}
    service, store, worker = await started(run, tmp_path, HEALTHY, rate=2.0, plan=thin)
    try:
        held: list[dict[str, Any]] = []
        for _ in range(15):
            await service.serve(CHUNK_S, 20.0)
            audit = await read_topic(run.topic("audit"))
            held = [a for a in audit if a.get("type") == "rollout" and a["action"] == "hold"]
            if held:
                break
    finally:
        stop(worker)
    assert held, "no hold was told"
    assert held[0]["needed_events"] > 0 and "samples" in held[0]["reason"]
    state = await store.read(service.name)
    assert (state.candidate, state.percent, rollout_of(state) is not None) == ("v2", 20.0, True)
    assert "ramp" not in [op for op, _, _ in moves(await store.history(service.name))]


async def test_pause_resume_and_abort_through_the_cli(
        run: IsolatedRun, tmp_path: Path) -> None:
    """Paused, a good release stays at its step however long it is fine; resumed, it is
    judged afresh and moves on; aborted, the service is back on v1."""
    service, store, worker = await started(run, tmp_path, HEALTHY)
    try:
        cli(run, "rollout", "pause", service.name, "--by", "bo")
        for _ in range(4):  # time enough to pass the step twice over
            await service.serve(CHUNK_S, 20.0)
        shown = cli(run, "rollout", "status", service.name)
        assert "PAUSED" in shown and "paused by bo" in shown
        assert (await store.read(service.name)).percent == 20.0
        cli(run, "rollout", "resume", service.name)
        state = await service.follow(lambda s: share_of_release(s, "v2") == 60.0, chunks=8)
        cli(run, "rollout", "abort", service.name, "--reason", "enough for today")
        state = await store.read(service.name)
    finally:
        stop(worker)
    assert (state.active, state.candidate, state.rollout) == ("v1", None, None)
    ops = [op for op, _, outcome in moves(await store.history(service.name))
           if outcome == "applied"]
    assert ops == ["rollout_start", "rollout_pause", "rollout_resume", "ramp",
                   "rollout_abort"]


async def test_a_pin_during_a_ramp_stops_its_movement(
        run: IsolatedRun, tmp_path: Path) -> None:
    service, store, worker = await started(run, tmp_path, HEALTHY)
    try:
        cli(run, "pin", service.name, "--reason", "freeze")
        for _ in range(4):
            await service.serve(CHUNK_S, 20.0)
        audit = await read_topic(run.topic("audit"))
    finally:
        stop(worker)
    state = await store.read(service.name)
    assert (state.candidate, state.percent, rollout_of(state) is not None) == ("v2", 20.0, True)
    held = [a for a in audit if a.get("type") == "rollout" and a["action"] == "hold"]
    assert len(held) == 1 and "pinned" in held[0]["reason"]
    assert "ramp" not in [op for op, _, _ in moves(await store.history(service.name))]


async def test_a_forged_or_skipping_advance_on_the_commands_topic_is_refused_and_recorded(
        run: IsolatedRun, tmp_path: Path) -> None:
    """A move signed with another secret, and a well-signed one that skips a step, are both
    refused by the worker's actuator, in the history and on the audit topic; nothing moves."""
    service, store, worker = await started(run, tmp_path, HEALTHY)
    state = await store.read(service.name)
    current = rollout_of(state)
    assert current is not None

    def move(to: float, secret: bytes) -> bytes:
        command = new_command(service.name, "ramp", "rule:rollout", time.time(),
                              release="v2", percent=to, expected_epoch=state.epoch,
                              evidence={"rollout": current.id, "from": 20.0})
        return message(sign(command, secret))

    try:
        await send_commands(run, [move(60.0, b"forged-secret"),
                                  move(100.0, run.secret.encode())], key=service.name)
        audit = await wait_for_audit(run, lambda found: len(
            [a for a in found if a.get("type") == "outcome" and a.get("op") == "ramp"]) >= 2)
    finally:
        stop(worker)
    outcomes = [(a["status"], a["code"]) for a in audit
                if a.get("type") == "outcome" and a.get("op") == "ramp"]
    assert outcomes == [("refused", "bad_signature"), ("refused", "not_in_plan")]
    history = await store.history(service.name)
    assert [h["code"] for h in history if h["op"] == "ramp"] == ["bad_signature", "not_in_plan"]
    assert (await store.read(service.name)).epoch == state.epoch


def rollout_records(audit: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [a for a in audit if a.get("type") == "rollout" and a["action"] == action]


async def test_a_restarted_worker_resumes_the_step_with_its_evidence_and_never_moves_twice(
        run: IsolatedRun, tmp_path: Path) -> None:
    """Stopped mid-step and started again, the worker goes on with the ramp it checkpointed
    (it does not announce the step afresh) and moves each step once."""
    service, store, worker = await started(run, tmp_path, HEALTHY)
    try:
        # The worker sees the rollout once its cached pointer is renewed: until its ramp
        # has said it gathers evidence, the chunks may be judged on the pointer before.
        for _ in range(3):
            await service.serve(CHUNK_S, 20.0)
            if rollout_records(await read_topic(run.topic("audit")), "wait"):
                break
        assert (await store.read(service.name)).percent == 20.0  # not passed yet
        stop(worker)
        worker = run.start_worker(ROLLGUARD_POLICY=rollout_policy(tmp_path))
        state = await service.follow(lambda s: s.stable == "v2", chunks=20)
    finally:
        stop(worker)
    assert state.rollout is None
    ramps = [(h["command"]["percent"], h["outcome"]) for h in
             await store.history(service.name) if h["op"] == "ramp"]
    assert ramps == [(60.0, "applied"), (100.0, "applied")]
    waits = [a for a in rollout_records(await read_topic(run.topic("audit")), "wait")
             if a["percent"] == 20.0]
    assert len(waits) == 1, waits
