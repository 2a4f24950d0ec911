"""What the rollout commands do to a pointer (actions/rollout.py through actions/plan.py)."""

from __future__ import annotations

from typing import Any

import pytest

from rollguard.actions.commands import Command, new_command
from rollguard.actions.plan import plan
from rollguard.actions.planned import Change, NoChange, Refusal
from rollguard.actions.releases import Release
from rollguard.actions.rollout import rollout_of
from rollguard.actions.state import PointerState

RELEASES = {"v1": Release("v1", {"model": "m1"}), "v2": Release("v2", {"model": "m2"})}
STABLE = PointerState("bot", "v1", "v1", 3, {"model": "m1"})


def cmd(op: str, by: str = "ann", **fields: Any) -> Command:
    return new_command("bot", op, by, 0.0, **fields)  # type: ignore[arg-type]


def start(**plan_fields: Any) -> PointerState:
    planned = plan(STABLE, cmd("rollout_start", release="v2",
                               evidence={"plan": {"steps": [10, 50, 100], **plan_fields}}),
                   RELEASES, 1.0)
    assert isinstance(planned, Change)
    return planned.state


def ramp(state: PointerState, to: float, by: str = "rule:rollout", **fields: Any) -> Command:
    current = rollout_of(state)
    assert current is not None
    return cmd("ramp", by, release="v2", percent=to, expected_epoch=state.epoch,
               evidence={"rollout": current.id, "from": current.percent}, **fields)


def test_a_start_makes_a_new_episode_at_the_first_step() -> None:
    state = start()
    assert (state.candidate, state.percent, state.watched_since) == ("v2", 10.0, state.epoch)
    current = rollout_of(state)
    assert current is not None and (current.by, current.signed_by) == ("ann",
                                                                        "deployment-secret")


@pytest.mark.parametrize(("state", "code"), [
    (STABLE.with_changes(pinned=True), "pinned"),
    (STABLE.with_changes(active="v2", active_components={"model": "m2"}), "invalid"),
])
def test_a_start_on_a_pinned_or_watched_service_is_refused(state: PointerState,
                                                          code: str) -> None:
    planned = plan(state, cmd("rollout_start", release="v2", force=True,
                              evidence={"plan": {}}), RELEASES, 1.0)
    assert isinstance(planned, Refusal) and planned.reason == code


def test_a_rule_waits_for_a_person_where_the_plan_asks_for_approval() -> None:
    state = start(approval_before=[50])
    by_rule = plan(state, ramp(state, 50.0), RELEASES, 2.0)
    assert isinstance(by_rule, Refusal) and by_rule.reason == "needs_approval"
    by_person = plan(state, ramp(state, 50.0, by="cy"), RELEASES, 2.0)
    assert isinstance(by_person, Change) and by_person.state.percent == 50.0


def test_a_ramp_without_an_expected_epoch_is_refused() -> None:
    state = start()
    loose = cmd("ramp", "rule:rollout", release="v2", percent=50.0,
                evidence={"rollout": rollout_of(state).id, "from": 10.0})  # type: ignore[union-attr]
    planned = plan(state, loose, RELEASES, 2.0)
    assert isinstance(planned, Refusal) and "compare-and-set" in planned.message


def test_an_abort_at_full_traffic_goes_back_to_the_stable_release() -> None:
    state = start()
    for to in (50.0, 100.0):
        planned = plan(state, ramp(state, to), RELEASES, 2.0)
        assert isinstance(planned, Change)
        state = planned.state
    assert (state.active, state.candidate) == ("v2", None)
    aborted = plan(state, cmd("rollout_abort"), RELEASES, 3.0)
    assert isinstance(aborted, Change)
    assert (aborted.state.active, aborted.state.active_components, aborted.state.rollout) == (
        "v1", {"model": "m1"}, None)


def test_a_second_pause_changes_nothing_and_a_rule_cannot_pause() -> None:
    paused = plan(start(), cmd("rollout_pause"), RELEASES, 2.0)
    assert isinstance(paused, Change)
    assert isinstance(plan(paused.state, cmd("rollout_pause"), RELEASES, 3.0), NoChange)
    by_rule = plan(start(), cmd("rollout_pause", "rule:x"), RELEASES, 2.0)
    assert isinstance(by_rule, Refusal)
