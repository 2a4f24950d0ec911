"""The commands of a staged rollback: one signed, idempotent command per step, and a restore."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from rollguard.actions.commands import Command, new_command, refusal, sign
from rollguard.actions.plan import Change, Refusal, plan
from rollguard.actions.releases import Release
from rollguard.actions.respond import Suppression, respond
from rollguard.actions.state import PointerState
from rollguard.detectors.decision import Decision, DecisionAction, Verdict

SECRET = b"staged-secret"
NOW = 1_800_000_000.0
CANARY = PointerState("chat", active="v1", stable="v1", epoch=7, active_components={},
                      candidate="v2", candidate_components={}, percent=50.0, watched_since=5)
FULL = PointerState("chat", active="v2", stable="v1", epoch=7, active_components={},
                    watched_since=5)
RELEASES = {"v1": Release("v1", {"model": "m1"}), "v2": Release("v2", {"model": "m2"}),
            "v3": Release("v3", {"model": "m3"})}


def decision(action: DecisionAction, percent: float, step: int = 1, round_: int = 0,
             **staged: Any) -> Decision:
    evidence = {"metric": "error", "staged": {"rule": "error", "round": round_, "step": step,
                                              "steps": [10.0, 0.0], "percent": percent,
                                              **staged}}
    return Decision(NOW, "chat", "v2", action, Verdict.SUSTAINED, "v1", ["model"], "worse",
                    evidence)


@pytest.mark.parametrize(("made", "key"), [
    (decision(DecisionAction.STAGE, 10.0, step=1), "chat:v2@5:staged:0:step1"),
    (decision(DecisionAction.ROLLBACK, 0.0, step=2), "chat:v2@5:staged:0:step2"),
    (decision(DecisionAction.STAGE, 10.0, step=1, round_=1), "chat:v2@5:staged:1:step1"),
])
def test_each_step_is_a_signed_cut_under_its_own_key(made: Decision, key: str) -> None:
    """A deterministic key per service, candidate@episode, round and step; the whole
    candidate's share is cut (no components), with no expected epoch."""
    first, again = respond(made, CANARY, NOW, SECRET), respond(made, CANARY, NOW + 1, SECRET)
    assert isinstance(first, Command) and isinstance(again, Command)
    assert first.idempotency_key == again.idempotency_key == key
    assert refusal(first, SECRET, NOW) is None
    assert (first.op, first.release, first.components) == ("rollback", "v1", ())
    assert first.percent == made.evidence["staged"]["percent"]
    assert first.expected_epoch is None and first.issued_by == "rule:error"


@pytest.mark.parametrize(("pointer", "why"), [
    (dataclasses.replace(CANARY, pinned=True), "pinned"),
    (dataclasses.replace(CANARY, percent=5.0), "nothing to cut"),
    (None, "no version pointer"),
])
def test_a_step_with_nothing_to_do_is_suppressed(pointer: PointerState | None,
                                                 why: str) -> None:
    response = respond(decision(DecisionAction.STAGE, 10.0), pointer, NOW, SECRET)
    assert isinstance(response, Suppression) and why in response.why


@pytest.mark.parametrize(("share", "percent"), [(50.0, 50.0), (100.0, None)])
def test_a_restore_promotes_the_candidate_back_to_its_share(share: float,
                                                            percent: float | None) -> None:
    """A compare-and-set on the epoch seen; 100 % means the candidate was fully active."""
    made = decision(DecisionAction.RESTORE, 10.0, restore_percent=share)
    command = respond(made, dataclasses.replace(CANARY, percent=10.0), NOW, SECRET)
    assert isinstance(command, Command)
    assert (command.op, command.release, command.percent) == ("promote", "v2", percent)
    assert command.expected_epoch == 7 and command.idempotency_key.endswith(":restore")
    applied = plan(dataclasses.replace(CANARY, percent=10.0), command, RELEASES, NOW)
    assert isinstance(applied, Change) and applied.state.watched_release == "v2"


def test_a_restore_without_a_known_share_is_left_to_a_person() -> None:
    made = decision(DecisionAction.RESTORE, 10.0, restore_percent=None)
    response = respond(made, CANARY, NOW, SECRET)
    assert isinstance(response, Suppression) and "by hand" in response.why


@pytest.mark.parametrize("pointer", [CANARY, FULL], ids=["canary", "fully-active"])
def test_the_steps_cut_the_pointer_to_ten_percent_then_roll_it_back(
        pointer: PointerState) -> None:
    state = pointer
    for made in (decision(DecisionAction.STAGE, 10.0, 1), decision(DecisionAction.ROLLBACK,
                                                                     0.0, 2)):
        command = respond(made, state, NOW, SECRET)
        assert isinstance(command, Command)
        change = plan(state, command, RELEASES, NOW)
        assert isinstance(change, Change)
        state = change.state
        if made.action == DecisionAction.STAGE:
            assert (state.active, state.candidate, state.percent) == ("v1", "v2", 10.0)
    assert (state.active, state.candidate, state.watched_release) == ("v1", None, None)


def test_a_rule_cannot_promote_a_release_not_under_watch() -> None:
    """What lets the commands topic carry a restore: a rule's promote of any other release
    is refused, so a leaked secret cannot promote a new release through it."""
    command = sign(new_command("chat", "promote", "rule:error", NOW, release="v3",
                               expected_epoch=7), SECRET)
    assert isinstance(plan(CANARY, command, RELEASES, NOW), Refusal)
