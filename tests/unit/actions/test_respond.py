"""What a decision means for the pointer: a signed command, or a suppression that says why."""

from __future__ import annotations

import dataclasses

import pytest

from rollguard.actions.commands import Command, refusal
from rollguard.actions.respond import NO_POINTER, Suppression, idempotency_key, respond, roles_of
from rollguard.actions.state import PointerState
from rollguard.detectors.decision import Decision, DecisionAction, Verdict

SECRET = b"respond-secret"
NOW = 1_800_000_000.0
POINTER = PointerState("chat", active="v1", stable="v1", epoch=7, active_components={},
                       candidate="v2", candidate_components={}, percent=50.0,
                       watched_since=5)
ROLLBACK = Decision(ts=NOW, service="chat", release="v2", action=DecisionAction.ROLLBACK,
                    verdict=Verdict.SUSTAINED, to="v1", components=["model"], reason="worse",
                    evidence={"rule": "latency", "metric": "latency_ms"})


@pytest.mark.parametrize(("decision", "pointer", "why"), [
    (dataclasses.replace(ROLLBACK, dry_run=True), POINTER, "dry-run"),
    (ROLLBACK, None, NO_POINTER),
    (ROLLBACK, dataclasses.replace(POINTER, pinned=True), "pinned"),
    (dataclasses.replace(ROLLBACK, release="v3"), POINTER, "no longer the release under watch"),
], ids=["dry-run", "no-pointer", "pinned", "not-watched"])
def test_a_rollback_that_must_not_act_is_suppressed_with_why(
        decision: Decision, pointer: PointerState | None, why: str) -> None:
    response = respond(decision, pointer, NOW, SECRET)
    assert isinstance(response, Suppression) and why in response.why


def test_a_rollback_becomes_a_signed_compare_and_set_command() -> None:
    """The command is signed with the secret, valid now, expects the pointer's epoch, and
    carries the decision's idempotency key and evidence."""
    command = respond(ROLLBACK, POINTER, NOW, SECRET)
    assert isinstance(command, Command)
    assert refusal(command, SECRET, NOW) is None
    assert (command.op, command.release, command.components) == ("rollback", "v1", ("model",))
    assert command.expected_epoch == 7 and command.issued_by == "rule:latency"
    assert command.idempotency_key == idempotency_key(ROLLBACK, POINTER) == (
        "chat:v2@5:rollback:model")
    assert command.evidence["verdict"] == "sustained"


def test_the_same_decision_twice_gives_the_same_idempotency_key() -> None:
    first, again = (respond(ROLLBACK, POINTER, NOW + i, SECRET) for i in range(2))
    assert isinstance(first, Command) and isinstance(again, Command)
    assert first.command_id != again.command_id
    assert first.idempotency_key == again.idempotency_key


def test_a_release_promoted_again_gets_a_new_idempotency_key() -> None:
    """Rolled back, then promoted again (a new episode): its second rollback is not taken for
    a repeat of the first."""
    again = dataclasses.replace(POINTER, epoch=9, watched_since=9)
    first, second = respond(ROLLBACK, POINTER, NOW, SECRET), respond(ROLLBACK, again, NOW, SECRET)
    assert isinstance(first, Command) and isinstance(second, Command)
    assert first.idempotency_key != second.idempotency_key


def test_an_alert_means_nothing_for_the_pointer() -> None:
    alert = dataclasses.replace(ROLLBACK, action=DecisionAction.ALERT)
    assert respond(alert, POINTER, NOW, SECRET) is None


def test_the_roles_come_from_the_pointer() -> None:
    assert roles_of(POINTER) == ("v1", "v2", 5, 50.0)
    assert roles_of(None) is None


@pytest.mark.parametrize("ttl_s", [3.0, 300.0])
def test_a_rollback_command_expires_after_the_configured_time(ttl_s: float) -> None:
    command = respond(ROLLBACK, POINTER, NOW, SECRET, ttl_s=ttl_s)
    assert isinstance(command, Command) and command.expires_at == NOW + ttl_s


def test_a_pinned_services_rollback_that_waits_for_people_is_kept_for_them() -> None:
    """Approvers may override a pin (docs/pointer-protocol.md, section 8): the command is
    issued to wait for them, where an automatic one is suppressed."""
    waiting = dataclasses.replace(ROLLBACK, requires_approval=True)
    command = respond(waiting, dataclasses.replace(POINTER, pinned=True), NOW, SECRET)
    assert isinstance(command, Command) and not command.force
