"""A guarded rollout's commands on the real Redis: the plan a person signed stored with the
pointer, each move a compare-and-set within it, forged, replayed and skipping moves refused
and recorded, the Lua script's own check of the stored plan."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from rollguard.actions.commands import Command, new_command, sign
from rollguard.actions.planned import Change
from rollguard.actions.pointer import Outcome, PointerStore
from rollguard.actions.rollout import rollout_of
from rollguard.actions.state import PointerState
from tests.support.pointer import SECRET, Issue, MakeOperator

pytestmark = [pytest.mark.integration]

PLAN = {"steps": [10, 50, 100], "min_seconds": 1, "limit_seconds": 60, "bake_seconds": 1}


def ramp(service: str, state: PointerState, to: float, by: str = "rule:rollout",
         secret: bytes = SECRET, **evidence: Any) -> Command:
    """The worker's signed move of the rollout on ``state`` to ``to`` percent."""
    current = rollout_of(state)
    assert current is not None
    fields = {"rollout": current.id, "from": current.percent, **evidence}
    return sign(new_command(service, "ramp", by, time.time(), release=current.release,
                            percent=to, expected_epoch=state.epoch,
                            idempotency_key=f"{service}:rollout:{current.id}:{to:g}",
                            evidence=fields), secret)


async def started(store: PointerStore, service: str, issue: Issue) -> PointerState:
    (await issue("rollout_start", release="v2", percent=10.0,
                 evidence={"plan": PLAN})).raise_for_status()
    return await store.read(service)


async def test_a_started_rollout_serves_the_first_step_and_stores_the_signed_plan(
        released: PointerStore, service: str, operator: MakeOperator) -> None:
    """The plan is stored with the pointer, naming who signed it with their own key."""
    key = await operator("ann")
    as_ann = PointerStore(released.client, SECRET, operator=key)
    outcome = await as_ann.issue(service, "rollout_start", key.name, release="v2",
                                 percent=10.0, evidence={"plan": PLAN})
    state = outcome.raise_for_status().state
    assert state is not None and (state.candidate, state.percent) == ("v2", 10.0)
    stored = rollout_of(await released.read(service))
    assert stored is not None
    assert (stored.id, stored.by, stored.signed_by, stored.status, stored.steps) == (
        outcome.command_id, key.name, key.name, "running", (10.0, 50.0, 100.0))
    entry = (await released.history(service))[-1]
    assert entry["op"] == "rollout_start" and entry["signed_by"] == key.name


async def test_the_worker_moves_the_share_step_by_step_to_a_full_promotion(
        released: PointerStore, service: str, issue: Issue) -> None:
    """Each ramp moves to the plan's next step; at 100 % the release is active, the plan
    still stored until the release is marked stable."""
    state = await started(released, service, issue)
    (await released.execute(ramp(service, state, 50.0), time.time())).raise_for_status()
    state = await released.read(service)
    assert (state.candidate, state.percent, rollout_of(state).step) == ("v2", 50.0, 1)  # type: ignore[union-attr]
    (await released.execute(ramp(service, state, 100.0), time.time())).raise_for_status()
    state = await released.read(service)
    assert (state.active, state.candidate, state.stable) == ("v2", None, "v1")
    assert rollout_of(state) is not None
    (await issue("mark_stable", by="rule:rollout", release="v2",
                 expected_epoch=state.epoch)).raise_for_status()
    state = await released.read(service)
    assert (state.stable, state.rollout) == ("v2", None)


async def test_a_move_that_skips_a_step_is_refused_and_recorded(
        released: PointerStore, service: str, issue: Issue) -> None:
    state = await started(released, service, issue)
    outcome = await released.execute(ramp(service, state, 100.0), time.time())
    assert (outcome.status, outcome.code) == ("refused", "not_in_plan")
    assert "next step is 50%" in outcome.message
    assert (await released.read(service)).percent == 10.0
    assert (await released.history(service))[-1]["code"] == "not_in_plan"


async def test_a_forged_move_is_refused_and_recorded(
        released: PointerStore, service: str, issue: Issue) -> None:
    """A ramp signed with another secret never reaches the plan."""
    state = await started(released, service, issue)
    outcome = await released.execute(ramp(service, state, 50.0, secret=b"not-ours"),
                                     time.time())
    assert (outcome.status, outcome.code) == ("refused", "bad_signature")
    assert (await released.read(service)).percent == 10.0
    assert (await released.history(service))[-1]["code"] == "bad_signature"


async def test_a_replayed_move_is_refused_and_never_moves_twice(
        released: PointerStore, service: str, issue: Issue) -> None:
    state = await started(released, service, issue)
    move = ramp(service, state, 50.0)
    assert (await released.execute(move, time.time())).status == "applied"
    again = await released.execute(move, time.time())
    assert (again.status, again.code) == ("refused", "replayed")
    # The same decision made again (a restarted worker): same idempotency key, new id.
    repeat = await released.execute(replace(ramp(service, state, 50.0)), time.time())
    assert repeat.status == "already_applied"
    assert (await released.read(service)).percent == 50.0


async def test_a_move_of_a_paused_or_pinned_rollout_is_refused(
        released: PointerStore, service: str, issue: Issue) -> None:
    state = await started(released, service, issue)
    (await issue("rollout_pause")).raise_for_status()
    paused = await released.read(service)
    outcome = await released.execute(ramp(service, paused, 50.0), time.time())
    assert (outcome.code, "paused" in outcome.message) == ("not_in_plan", True)
    (await issue("rollout_resume")).raise_for_status()
    (await issue("pin")).raise_for_status()
    pinned = await released.read(service)
    outcome = await released.execute(ramp(service, pinned, 50.0), time.time())
    assert (outcome.status, outcome.code) == ("refused", "pinned")
    assert (await released.read(service)).percent == state.percent == 10.0


async def test_the_lua_script_refuses_a_move_outside_the_stored_plan(
        released: PointerStore, service: str, issue: Issue) -> None:
    """Even a planned change that skips a step (a planner bug) is refused by apply.lua."""
    state = await started(released, service, issue)
    move = ramp(service, state, 100.0)
    bogus = Change(state.with_changes(epoch=state.epoch + 1, percent=100.0), "skips a step")
    outcome: Outcome = await released._run(released.keys(service), move, time.time(), "plan",
                                           state.epoch, bogus)
    assert (outcome.status, outcome.code) == ("refused", "not_in_plan")
    assert "ramp refused by the stored plan" in outcome.message
    assert (await released.read(service)).percent == 10.0


async def test_abort_puts_the_service_back_on_stable_and_ends_the_rollout(
        released: PointerStore, service: str, issue: Issue) -> None:
    state = await started(released, service, issue)
    (await released.execute(ramp(service, state, 50.0), time.time())).raise_for_status()
    (await issue("rollout_abort", reason="not today")).raise_for_status()
    state = await released.read(service)
    assert (state.active, state.candidate, state.rollout) == ("v1", None, None)


async def test_finish_takes_the_release_to_all_traffic_at_once(
        released: PointerStore, service: str, issue: Issue) -> None:
    await started(released, service, issue)
    (await issue("rollout_finish")).raise_for_status()
    state = await released.read(service)
    current = rollout_of(state)
    assert (state.active, state.candidate) == ("v2", None)
    assert current is not None and (current.percent, current.last["op"]) == (100.0, "finish")


async def test_a_rule_cannot_start_a_rollout_nor_start_a_second_one(
        released: PointerStore, service: str, issue: Issue) -> None:
    by_rule = await issue("rollout_start", by="rule:x", release="v2",
                          evidence={"plan": PLAN})
    assert (by_rule.status, by_rule.code) == ("refused", "invalid")
    await started(released, service, issue)
    second = await issue("rollout_start", release="v2", evidence={"plan": PLAN})
    assert "under way" in second.message


async def test_a_rollback_ends_the_rollout(
        released: PointerStore, service: str, issue: Issue) -> None:
    await started(released, service, issue)
    (await issue("rollback", by="rule:error")).raise_for_status()
    state = await released.read(service)
    assert (state.active, state.candidate, state.rollout) == ("v1", None, None)
