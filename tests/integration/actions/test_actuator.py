"""The actuator on the real Redis: commands-topic messages in, pointer changes, history and
audit records out; every refusal recorded; approvals that wait for a person run once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import orjson
import pytest

from rollguard.actions.actuator import Actuator
from rollguard.actions.approvals import PendingCommands, approval
from rollguard.actions.commands import Command, Op, sign
from rollguard.actions.pointer import PointerStore
from tests.support.pointer import SECRET, Issue, MakeOperator, command, message

pytestmark = pytest.mark.integration


@pytest.fixture(name="actuator")
def fixture_actuator(released: PointerStore) -> Actuator:
    return Actuator(released, PendingCommands(released.client), SECRET)


def audit(out: Any) -> list[dict[str, Any]]:
    return [orjson.loads(a) for a in out.audit]


def forged(service: str) -> Command:
    return replace(command(service, "promote", release="v2"), signature="ab" * 32)


def wrongly_signed(service: str) -> Command:
    return sign(replace(command(service, "promote", release="v2"), signature=""), b"other")


def expired(service: str) -> Command:
    return sign(replace(command(service, "promote", release="v2"),
                        expires_at=time.time() - 1), SECRET)


@pytest.mark.parametrize(("make", "code"), [
    (lambda s: replace(command(s, "promote", release="v2"), signature=""), "unsigned"),
    (forged, "bad_signature"),
    (wrongly_signed, "bad_signature"),
    (expired, "expired"),
], ids=["unsigned", "forged", "wrong-secret", "expired"])
@pytest.mark.parametrize("approval_needed", [False, True], ids=["direct", "for-approval"])
async def test_a_bad_command_is_refused_in_the_history_and_the_audit(
        actuator: Actuator, released: PointerStore, service: str, make: Any, code: str,
        approval_needed: bool) -> None:
    """Refused before it runs or waits for approval; recorded in both places; pointer kept."""
    bad = make(service)
    out = await actuator.handle(message(bad, approval_needed))
    [record] = audit(out)
    assert (record["status"], record["code"], record["command_id"]) == ("refused", code,
                                                                       bad.command_id)
    last = (await released.history(service))[-1]
    assert (last["outcome"], last["code"], last["command_id"]) == ("refused", code,
                                                                   bad.command_id)
    assert (await released.read(service)).epoch == 1
    assert await actuator.pending.list(service) == {}


async def test_a_malformed_command_is_refused_in_the_history_and_the_audit(
        actuator: Actuator, released: PointerStore, service: str) -> None:
    body = {**command(service, "promote", release="v2").as_dict(), "op": "explode"}
    [record] = audit(await actuator.handle(message(body)))
    assert (record["status"], record["code"]) == ("refused", "malformed")
    last = (await released.history(service))[-1]
    assert (last["outcome"], last["code"], last["command_id"]) == (
        "refused", "malformed", body["command_id"])


async def test_a_refusal_for_an_unknown_service_goes_to_the_audit_topic_only(
        actuator: Actuator, released: PointerStore) -> None:
    """No history key is made for a service nobody registered, valid name or not."""
    unknown = {**forged("x").as_dict(), "service": "nobody-registered-this"}
    [record] = audit(await actuator.handle(message(unknown)))
    assert (record["status"], record["code"], record["recorded"]) == (
        "refused", "bad_signature", False)
    invalid = {**forged("x").as_dict(), "service": "not a name"}
    [record] = audit(await actuator.handle(message(invalid)))
    assert record["type"] == "command-refused" and "service name" in record["why"]
    assert not [k async for k in released.client.scan_iter(match="rollguard:{nobody-*")]


@pytest.fixture(name="canary")
async def fixture_canary(released: PointerStore, issue: Issue) -> PointerStore:
    """v2 on 50 % of traffic (epoch 2), promoted by a person with the CLI's store."""
    (await issue("promote", release="v2", percent=50.0)).raise_for_status()
    return released


def staged_cut(service: str, percent: float) -> Command:
    """What a rule issues: cut the candidate's share to ``percent``."""
    return command(service, "rollback", "rule:quality", percent=percent)


async def test_a_command_run_and_then_replayed_is_refused(
        actuator: Actuator, canary: PointerStore, service: str) -> None:
    good = staged_cut(service, 10.0)
    [applied] = audit(await actuator.handle(message(good)))
    assert applied["status"] == "applied"
    [replayed] = audit(await actuator.handle(message(good)))
    assert (replayed["status"], replayed["code"]) == ("refused", "replayed")
    assert (await canary.read(service)).epoch == 3


@pytest.mark.parametrize(("op", "fields"), [
    ("promote", {"release": "v2"}), ("pin", {}), ("unpin", {}), ("mark_stable", {}),
])
@pytest.mark.parametrize("approval_needed", [False, True], ids=["direct", "for-approval"])
async def test_an_operation_rules_never_issue_is_refused_even_when_signed(
        actuator: Actuator, canary: PointerStore, service: str, op: Op,
        fields: dict[str, Any], approval_needed: bool) -> None:
    """Only rollbacks and approvals come through the topic: a correctly signed promote (a
    leaked secret) is refused, in the history and the audit, and nothing waits."""
    signed = command(service, op, "mallory", **fields)
    [record] = audit(await actuator.handle(message(signed, approval_needed)))
    assert (record["status"], record["code"], record["recorded"]) == (
        "refused", "op_not_allowed", True)
    last = (await canary.history(service))[-1]
    assert (last["outcome"], last["code"], last["command_id"]) == (
        "refused", "op_not_allowed", signed.command_id)
    state = await canary.read(service)
    assert (state.epoch, state.pinned) == (2, False)
    assert await actuator.pending.list(service) == {}


async def test_an_approved_command_runs_once_however_often_it_is_approved(
        actuator: Actuator, canary: PointerStore, service: str, operator: MakeOperator,
        ) -> None:
    """Two approvals of one waiting command, at once: one flip, one refusal."""
    waiting = staged_cut(service, 20.0)
    [asked] = audit(await actuator.handle(message(waiting, approval_needed=True)))
    assert asked["type"] == "approval-needed" and service in asked["how"]
    assert (await canary.read(service)).epoch == 2
    ana = await operator("ana")
    ok = approval(service, waiting.command_id, ana.name, ana.key, time.time())
    outs = await asyncio.gather(*(actuator.handle(ok) for _ in range(2)))
    statuses = sorted(record["status"] for out in outs for record in audit(out))
    assert statuses == ["applied", "refused"]
    state = await canary.read(service)
    assert (state.epoch, state.candidate, state.percent) == (3, "v2", 20.0)
    applied = [h for h in await canary.history(service) if h["outcome"] == "applied"]
    assert applied[-1]["command"]["evidence"]["approved_by"] == ana.name


@pytest.mark.parametrize(("forge", "code"), [
    (lambda s, c, ana: approval(s, c, ana.name, b"guess" * 8, time.time()), "bad_approval"),
    (lambda s, c, ana: approval(s, c, "mallory", ana.key, time.time()), "unknown_operator"),
    (lambda s, c, ana: orjson.dumps({"type": "approval", "service": s, "command_id": c,
                                     "by": ana.name, "ts": time.time(), "signature": "00"}),
     "bad_approval"),
], ids=["wrong-key", "unregistered", "older-format"])
async def test_a_forged_approval_is_refused_and_the_command_keeps_waiting(
        actuator: Actuator, canary: PointerStore, service: str, operator: MakeOperator,
        forge: Any, code: str) -> None:
    waiting = staged_cut(service, 20.0)
    await actuator.handle(message(waiting, approval_needed=True))
    [record] = audit(await actuator.handle(forge(service, waiting.command_id,
                                                 await operator("ana"))))
    assert (record["status"], record["code"]) == ("refused", code)
    assert (await canary.history(service))[-1]["code"] == code
    assert list(await actuator.pending.list(service)) == [waiting.command_id]


async def test_the_pending_store_takes_a_command_once(
        released: PointerStore, service: str) -> None:
    """Two takes of one command at once: one gets it, the other None (the Lua is atomic)."""
    pending = PendingCommands(released.client)
    await pending.put(service, "c-1", b"{}")
    taken = await asyncio.gather(*(pending.take(service, "c-1") for _ in range(5)))
    assert sorted(taken, key=lambda t: t is None) == [b"{}", None, None, None, None]
    assert await pending.list(service) == {}


async def test_a_rules_restore_of_the_staged_candidate_is_carried_out(
        actuator: Actuator, canary: PointerStore, service: str) -> None:
    """Cut to 10 %, then the rule gives the candidate its 50 % back (a compare-and-set
    promote of the release under watch); its promote of another release is refused."""
    [cut] = audit(await actuator.handle(message(staged_cut(service, 10.0))))
    assert cut["status"] == "applied"
    restore = command(service, "promote", "rule:quality", release="v2", percent=50.0,
                      expected_epoch=3)
    [restored] = audit(await actuator.handle(message(restore)))
    assert restored["status"] == "applied"
    state = await canary.read(service)
    assert (state.candidate, state.percent, state.epoch) == ("v2", 50.0, 4)
    other = command(service, "promote", "rule:quality", release="v1", expected_epoch=4)
    [refused] = audit(await actuator.handle(message(other)))
    assert (refused["status"], refused["code"]) == ("refused", "invalid")
