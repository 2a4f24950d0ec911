"""Execute the messages of the commands topic against the Redis version pointer, and hold
rollbacks that wait for a person until ``rollguard approve`` arrives.

Every message gives exactly one audit record of its outcome: applied, already applied (the
same idempotency key ran before), conflict (someone flipped first), refused (unsigned,
wrongly signed, expired, replayed, malformed, pinned, a bad approval, an operation rules
never issue, an approval by someone the policy does not allow), awaiting approval, or an
approval recorded while the command waits for another approver.

The topic carries only what rules issue: rollback commands (full, partial, staged cuts of
the candidate's share or cohorts), approvals of them, and a rule's restore of a staged
candidate's share (a compare-and-set promote of the release already under watch, see
``actions/staged.py``; ``actions/plan.py`` refuses a rule's promote of any other release).
Anything else — a promote, pin, unpin or mark_stable, even correctly signed — is refused as
``op_not_allowed``: people move the pointer with the CLI, never through the topic, so a
leaked secret cannot promote a new release.
A refusal is also appended to the service's Redis history when the service name is valid
and the service exists (:meth:`PointerStore.admit` checks signatures, in one place);
otherwise it goes to the audit topic only, so no message can create keys for a service
nobody registered.

Redis away: a message whose handling raised ServiceUnavailable is handled again with the same
``received_at`` (its :func:`~rollguard.actions.receipt.receipt`: when the broker received it, so a
restarted worker knows it too) until Redis is back, so a command received before its
expiry is carried out however long the outage lasts — once (its id is spent), and
with its compare-and-set, so a pointer a person moved meanwhile gives a recorded conflict.
:meth:`Actuator.waiting_alert` tells the operator a rollback waits; the outcome of a command
carried out late says so (``late``, ``waited_s``) and is always an alert.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from rollguard.actions.admitted import Admitted
from rollguard.actions.approvals import Approval, PendingCommands, check_approval, read_approval
from rollguard.actions.commands import Command, sign
from rollguard.actions.pin import approved_force
from rollguard.actions.pointer import Outcome, PointerStore
from rollguard.actions.respond import COMMAND_TTL_S
from rollguard.actions.script import late_by, late_note
from rollguard.base.errors import (
    AccessRefused,
    CommandRefused,
    RollguardError,
    ServiceUnavailable,
    UnknownService,
)
from rollguard.base.redact import redact
from rollguard.detectors.approvers import ApprovalRules, NotAllowed, Waiting, judge
from rollguard.detectors.names import drill_mark, is_service_name

# The operations the commands topic carries: what rules issue (actions/respond.py), and a
# guarded rollout's moves within the plan a person signed (actions/ramping.py).
TOPIC_OPS = frozenset({"rollback", "ramp"})


@dataclass
class ActuatorOutputs:
    """Messages to send, and the outcome records of commands that reached the pointer."""

    alerts: list[bytes] = field(default_factory=list)
    audit: list[bytes] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Actuator:
    store: PointerStore
    pending: PendingCommands
    secret: bytes
    clock: Callable[[], float] = time.time
    command_ttl_s: float = COMMAND_TTL_S  # how long an approved command is signed for
    approvals: ApprovalRules = field(default_factory=ApprovalRules)  # the policy's approvers

    async def handle(self, value: bytes | None, received_at: float | None = None,
                     ) -> ActuatorOutputs:
        """Carry out one commands-topic message; ServiceUnavailable means: try again later,
        passing the same ``received_at`` (default: now), the time the message was received.
        """
        out = ActuatorOutputs()
        now = self.clock()
        received = now if received_at is None else min(received_at, now)
        try:
            message = orjson.loads(value or b"")
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "command":
                await self._on_command(message, now, received, out)
            elif kind == "approval":
                await self._on_approval(message, now, received, out)
            else:
                raise CommandRefused(f"unknown message type {kind!r}")
        except (ServiceUnavailable, AccessRefused):
            # the agent retries (or stops, on refused credentials): a command is never dropped
            # because Redis blinked or its password changed
            raise
        except (RollguardError, ValueError, KeyError, TypeError) as exc:
            _record(out, {"type": "command-refused", "at": now, "why": str(exc)}, alert=True)
        return out

    def waiting_alert(self, value: bytes | None, received_at: float, why: str) -> bytes:
        """The alert that a commands-topic message waits for Redis (sent once per message,
        when its first attempt failed): the service, the command id, the Redis address with
        no password, and why."""
        message = _loads(value)
        body = message.get("command")
        fields = body if isinstance(body, dict) else message
        kind = message.get("type")
        what = f"{fields.get('op', 'command')}" if kind == "command" else str(kind)
        service = str(fields.get("service", ""))
        return orjson.dumps({
            "type": "waiting-on-redis", "at": self.clock(), "received_at": received_at,
            "service": service, **drill_mark(service),
            "command_id": str(fields.get("command_id", "")), "op": what,
            "redis": redact(self.store.address), "why": redact(why),
            "message": f"a {what} waits for Redis at {redact(self.store.address)}: it is "
                       "carried out once Redis is back",
        })

    async def _on_command(self, message: dict[str, Any], now: float, received: float,
                          out: ActuatorOutputs) -> None:
        body = message.get("command")
        try:
            command = Command.from_bytes(orjson.dumps(body))
        except CommandRefused as exc:
            fields = body if isinstance(body, dict) else {}
            await self._refuse(fields.get("service"), "malformed", str(exc), now, out, {
                "command_id": str(fields.get("command_id", "")), "op": str(fields.get("op", "")),
                "command": orjson.dumps(body).decode()})
            return
        # signature and expiry first, the expiry as of the command's receipt
        admitted = await self.store.admit(command, now, received)
        if isinstance(admitted, Outcome):
            self._outcome(command, admitted, now, received, out, approved_by=None)
            return
        if command.op not in TOPIC_OPS and not _restore(command):
            await self._refuse(command.service, "op_not_allowed",
                               f"command {command.command_id}: {command.op} is not accepted "
                               f"from the commands topic (only {', '.join(sorted(TOPIC_OPS))} "
                               f"and approvals; people use the CLI)", now, out, {
                                   "command_id": command.command_id, "op": command.op,
                                   "issued_by": command.issued_by,
                                   "command": command.to_bytes().decode()})
            return
        if message.get("approval") != "required":
            await self._apply(admitted, now, received, out)
            return
        await self.pending.put(command.service, command.command_id, command.to_bytes())
        _record(out, {
            "type": "approval-needed", "at": now, "service": command.service,
            "command_id": command.command_id, "reason": command.reason,
            "how": f"rollguard approve {command.service} {command.command_id} --by NAME",
        }, alert=True)

    async def _on_approval(self, message: dict[str, Any], now: float, received: float,
                           out: ActuatorOutputs) -> None:
        """Check who approves (their own key, the policy's approvers), count them, and run
        the command once enough different people approved it."""
        about = {"command_id": str(message.get("command_id", "")), "op": "approve",
                 "issued_by": str(message.get("by", "")),
                 "approval_id": str(message.get("approval_id", ""))}
        try:
            given, needed = await self._judge_approval(message, received)
            status, approvers, stored = await self.pending.approve(
                given.service, given.command_id, given.by, needed)
            if status == "missing":
                raise _Refused("bad_approval", f"approval of {given.command_id}: no command "
                                               "waits under that id")
            if status == "duplicate":
                raise _Refused("same_approver", f"{given.by} has already approved "
                                                f"{given.command_id}")
        except _Refused as exc:
            await self._refuse(message.get("service"), exc.code, exc.why, now, out, about)
            return
        if status == "waiting" or stored is None:
            _record(out, {
                "type": "approval-recorded", "at": now, "service": given.service,
                "command_id": given.command_id, "approval_id": given.approval_id,
                "by": given.by, "approvers": list(approvers), "needed": needed,
                "message": f"{given.command_id} approved by {', '.join(approvers)}; it "
                           f"needs {needed - len(approvers)} more approver(s)",
            }, alert=True)
            return
        await self._run_approved(Command.from_bytes(stored), approvers, given.approval_id,
                                 now, received, out)

    async def _judge_approval(self, message: dict[str, Any], received: float,
                              ) -> tuple[Approval, int]:
        """The approval, checked, and how many approvers its command needs in all."""
        try:
            given = read_approval(message)
        except CommandRefused as exc:
            raise _Refused("bad_approval", str(exc)) from None
        if not is_service_name(given.service):
            raise _Refused("bad_approval", f"approval of {given.command_id}: no service "
                                           f"{given.service!r}")
        key = await self.store.signatures.key_of(given.by)
        if isinstance(key, tuple):
            raise _Refused(key[0], f"approval of {given.command_id}: {key[1]}")
        try:
            check_approval(given, key, received)
        except CommandRefused as exc:
            raise _Refused("bad_approval", str(exc)) from None
        found = await self.pending.get(given.service, given.command_id)
        if found is None:
            raise _Refused("bad_approval", f"approval of {given.command_id}: no command "
                                           "waits under that id")
        original = Command.from_bytes(found[0])
        verdict = judge(self.approvals, original.issued_by.removeprefix("rule:"), given.by,
                        found[1], pinned=await self._pinned(original.service),
                        full=_is_full(original))
        if isinstance(verdict, NotAllowed):
            raise _Refused(verdict.code, f"approval of {given.command_id}: {verdict.why}")
        return given, verdict.needed if isinstance(verdict, Waiting) else len(verdict.approvers)

    async def _pinned(self, service: str) -> bool:
        try:
            return (await self.store.read(service)).pinned
        except UnknownService:
            return False

    async def _run_approved(self, original: Command, approvers: tuple[str, ...],
                            approval_id: str, now: float, received: float,
                            out: ActuatorOutputs) -> None:
        # The approval is the new authority: record who gave it and sign afresh, so a command
        # that waited longer than its expiry can still run once people say so. Approvers of
        # a pinned service's rollback override the pin, as --force does.
        pinned = await self._pinned(original.service)
        approved = sign(dataclasses.replace(
            original,
            evidence={**original.evidence, "approved_by": ", ".join(approvers),
                      "approvers": list(approvers), "approved_at": now},
            expires_at=now + self.command_ttl_s,
            force=approved_force(original.force, pinned),
        ), self.secret)
        outcome = await self.store.execute(approved, now, received)
        self._outcome(approved, outcome, now, received, out, ", ".join(approvers),
                      approval_id=approval_id)

    async def _refuse(self, service: Any, code: str, why: str, now: float, out: ActuatorOutputs,
                      entry: dict[str, str]) -> None:
        """A refusal of something that is no valid command: in the service's history when it
        names a valid service, and on the audit topic always."""
        extra = {"approval_id": entry["approval_id"]} if entry.get("approval_id") else {}
        if not is_service_name(service):
            _record(out, {"type": "command-refused", "at": now, "code": code, "why": why,
                          **extra}, alert=True)
            return
        outcome = await self.store.record_refusal(service, code, why, now, entry)
        _record(out, {"type": "outcome", "at": now, "service": service,
                      "command_id": entry.get("command_id", ""), "op": entry.get("op", ""),
                      "status": outcome.status, "code": code, "message": why,
                      "recorded": bool(outcome.history_id), **extra}, alert=True)

    async def _apply(self, admitted: Admitted, now: float, received: float,
                     out: ActuatorOutputs) -> None:
        outcome = await self.store.apply(admitted, now)
        self._outcome(admitted.command, outcome, now, received, out, approved_by=None)

    @staticmethod
    def _outcome(command: Command, outcome: Outcome, now: float, received: float,
                 out: ActuatorOutputs, approved_by: str | None, approval_id: str = "") -> None:
        record = {
            "type": "outcome", "at": now, "service": command.service,
            "command_id": command.command_id, "op": command.op, "status": outcome.status,
            "code": outcome.code, "epoch_before": outcome.epoch_before,
            "epoch_after": outcome.epoch_after, "message": outcome.message,
            "issued_by": command.issued_by, "issued_at": command.issued_at,
            "approved_by": approved_by,
            "reason": command.reason, "recorded": bool(outcome.history_id),
        }
        if command.percent is not None:  # a cut (or a share given back), not a full rollback
            record["percent"] = command.percent
        if approval_id:
            record["approval_id"] = approval_id
        waited = late_by(now, received)
        if waited is not None:
            record.update(late=late_note(waited), waited_s=round(waited, 3), received_at=received)
        out.outcomes.append(record)
        _record(out, record, alert=waited is not None
                or outcome.status in ("applied", "conflict", "refused"))


class _Refused(Exception):
    """An approval refused, with its reason code."""

    def __init__(self, code: str, why: str) -> None:
        super().__init__(why)
        self.code, self.why = code, why


def _is_full(command: Command) -> bool:
    """The whole release rolled back, not a component, a share or cohorts."""
    return not command.components and command.percent is None and not command.cohorts


def _restore(command: Command) -> bool:
    """A rule's promote that gives a staged candidate its share back (actions/staged.py),
    or a guarded rollout's release marked stable after its bake (actions/ramping.py): a
    compare-and-set on the epoch the rule saw, so it only undoes the rule's own cuts or
    marks what the rollout took to 100 %."""
    return (command.op in ("promote", "mark_stable") and command.automatic
            and command.expected_epoch is not None)


def _loads(value: bytes | None) -> dict[str, Any]:
    try:
        message = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return {}
    return message if isinstance(message, dict) else {}


def _record(out: ActuatorOutputs, record: dict[str, Any], alert: bool) -> None:
    encoded = orjson.dumps({**record, **drill_mark(record.get("service"))})
    out.audit.append(encoded)
    if alert:
        out.alerts.append(encoded)
