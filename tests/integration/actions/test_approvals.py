"""Decision rights on the real Redis: commands signed with operators' own keys, approvals by
the people the policy names, and two different approvers for a full rollback of a pinned
service."""

from __future__ import annotations

import time
from secrets import token_bytes
from typing import Any

import orjson
import pytest

from rollguard.actions.actuator import Actuator
from rollguard.actions.approvals import PendingCommands, approval
from rollguard.actions.commands import Command, new_command, sign_as
from rollguard.actions.operators import OperatorKey, OperatorRegistry
from rollguard.actions.pointer import PointerStore
from rollguard.base.errors import ConfigError
from rollguard.detectors.approvers import ApprovalRules
from tests.support.pointer import SECRET, Issue, MakeOperator, command

pytestmark = pytest.mark.integration


def audit(out: Any) -> list[dict[str, Any]]:
    return [orjson.loads(a) for a in out.audit]


def waiting_message(cmd: Command) -> bytes:
    return orjson.dumps({"type": "command", "approval": "required", "command": cmd.as_dict()})


def approve(service: str, cmd: Command, who: OperatorKey) -> bytes:
    return approval(service, cmd.command_id, who.name, who.key, time.time())


async def operators_store(store: PointerStore, who: OperatorKey) -> PointerStore:
    """The store of a person's CLI: their own key, no deployment secret."""
    return PointerStore(store.client, token_bytes(32), operator=who)


@pytest.fixture(name="people")
async def fixture_people(operator: MakeOperator) -> dict[str, OperatorKey]:
    return {name: await operator(name) for name in ("ana", "bob", "eve")}


@pytest.fixture(name="actuator")
def fixture_actuator(released: PointerStore, people: dict[str, OperatorKey]) -> Actuator:
    """An actuator whose policy lets ana and bob approve (not eve), two for a pinned
    service's full rollback."""
    rules = ApprovalRules(approvers=(people["ana"].name, people["bob"].name),
                          pinned_full_rollback=2)
    return Actuator(released, PendingCommands(released.client), SECRET, approvals=rules)


@pytest.fixture(name="canary")
async def fixture_canary(released: PointerStore, issue: Issue) -> PointerStore:
    (await issue("promote", release="v2", percent=50.0)).raise_for_status()
    return released


async def test_an_operator_signed_command_applies_and_the_history_names_the_signer(
        canary: PointerStore, service: str, people: dict[str, OperatorKey]) -> None:
    ana = people["ana"]
    outcome = await (await operators_store(canary, ana)).issue(service, "pin", ana.name)
    assert outcome.status == "applied"
    entry = (await canary.history(service))[-1]
    assert (entry["issued_by"], entry["signed_by"]) == (ana.name, ana.name)
    assert ana.key.hex() not in orjson.dumps(entry).decode()


async def test_an_operator_cannot_sign_as_another(
        canary: PointerStore, service: str, people: dict[str, OperatorKey]) -> None:
    """Their key does not sign another's name; a command claiming another's name is refused."""
    ana, bob = people["ana"], people["bob"]
    with pytest.raises(ConfigError, match="cannot be signed"):
        await (await operators_store(canary, ana)).issue(service, "pin", bob.name)
    unsigned = new_command(service, "pin", bob.name, time.time())
    posing = sign_as(unsigned, bob.name, ana.key)  # bob's name, ana's key
    assert (await canary.execute(posing, time.time())).code == "bad_signature"
    mismatch = sign_as(new_command(service, "pin", ana.name, time.time()), ana.name, ana.key)
    claimed = Command(**{**mismatch.as_dict(), "issued_by": bob.name})
    assert (await canary.execute(claimed, time.time())).code == "signer_mismatch"
    assert not (await canary.read(service)).pinned


async def test_a_rotated_or_revoked_key_no_longer_signs(
        canary: PointerStore, service: str, people: dict[str, OperatorKey]) -> None:
    ana = people["ana"]
    registry = OperatorRegistry(canary.client)
    await registry.add(ana.name, SECRET)  # a new generation: the old key is void
    outcome = await (await operators_store(canary, ana)).issue(service, "pin", ana.name)
    assert (outcome.status, outcome.code) == ("refused", "revoked_key")
    await registry.remove(ana.name)
    old = sign_as(new_command(service, "pin", ana.name, time.time()), ana.name, ana.key)
    assert (await canary.execute(old, time.time())).code == "unknown_operator"
    assert (await registry.add(ana.name, SECRET)).generation == 3, "never an old key again"


async def test_an_approval_by_someone_not_allowed_is_refused_and_recorded(
        actuator: Actuator, canary: PointerStore, service: str,
        people: dict[str, OperatorKey]) -> None:
    waiting = command(service, "rollback", "rule:quality", percent=20.0)
    await actuator.handle(waiting_message(waiting))
    [record] = audit(await actuator.handle(approve(service, waiting, people["eve"])))
    assert (record["status"], record["code"]) == ("refused", "not_an_approver")
    assert record["approval_id"]
    entry = (await canary.history(service))[-1]
    assert (entry["code"], entry["issued_by"]) == ("not_an_approver", people["eve"].name)
    assert list(await actuator.pending.list(service)) == [waiting.command_id]
    [applied] = audit(await actuator.handle(approve(service, waiting, people["ana"])))
    assert (applied["status"], applied["approved_by"]) == ("applied", people["ana"].name)


async def test_a_full_rollback_of_a_pinned_service_needs_two_different_approvers(
        actuator: Actuator, canary: PointerStore, service: str, issue: Issue,
        people: dict[str, OperatorKey]) -> None:
    ana, bob = people["ana"], people["bob"]
    (await issue("pin")).raise_for_status()
    epoch = (await canary.read(service)).epoch
    waiting = command(service, "rollback", "rule:quality", release="v1", expected_epoch=epoch)
    await actuator.handle(waiting_message(waiting))
    [first] = audit(await actuator.handle(approve(service, waiting, ana)))
    assert (first["type"], first["approvers"], first["needed"]) == (
        "approval-recorded", [ana.name], 2)
    [again] = audit(await actuator.handle(approve(service, waiting, ana)))
    assert (again["status"], again["code"]) == ("refused", "same_approver")
    assert (await canary.read(service)).candidate == "v2", "one person is not enough"
    [done] = audit(await actuator.handle(approve(service, waiting, bob)))
    assert (done["status"], done["approved_by"]) == ("applied", f"{ana.name}, {bob.name}")
    state = await canary.read(service)
    assert (state.candidate, state.pinned) == (None, True)
    evidence = (await canary.history(service))[-1]["command"]["evidence"]
    assert evidence["approvers"] == [ana.name, bob.name]


async def test_a_partial_rollback_of_a_pinned_service_needs_one_approver(
        actuator: Actuator, canary: PointerStore, service: str, issue: Issue,
        people: dict[str, OperatorKey]) -> None:
    (await issue("pin")).raise_for_status()
    waiting = command(service, "rollback", "rule:latency", components=("model",))
    await actuator.handle(waiting_message(waiting))
    [done] = audit(await actuator.handle(approve(service, waiting, people["bob"])))
    assert done["status"] == "applied"


async def test_an_approval_naming_no_valid_service_is_refused_on_the_audit_topic(
        actuator: Actuator, people: dict[str, OperatorKey]) -> None:
    ana = people["ana"]
    [record] = audit(await actuator.handle(approval("no such service", "c1", ana.name,
                                                    ana.key, time.time(), "a-1")))
    assert (record["type"], record["code"], record["approval_id"]) == (
        "command-refused", "bad_approval", "a-1")
