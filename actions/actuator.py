"""Execute rollback commands against the Redis version pointer, and hold the ones that wait
for a person until ``rollguard approve`` arrives.

Every command gives exactly one audit record of its outcome: applied, already applied
(the same idempotency key ran before), conflict (someone flipped first), refused
(unsigned, forged, expired, pinned), or awaiting approval.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actions.approvals import PendingCommands
from actions.commands import Command, sign, verify
from actions.pointer import PointerStore
from actions.respond import COMMAND_TTL_S
from rollguard.errors import CommandRefused, RollguardError, ServiceUnavailable
from streams import messages


@dataclass
class ActuatorOutputs:
    alerts: list[bytes] = field(default_factory=list)
    audit: list[bytes] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Actuator:
    store: PointerStore
    pending: PendingCommands
    secret: bytes
    clock: Callable[[], float] = time.time

    async def handle(self, value: bytes | None) -> ActuatorOutputs:
        out = ActuatorOutputs()
        now = self.clock()
        try:
            message = messages.loads(value or b"")
            kind = message.get("type")
            if kind == "command":
                await self._on_command(message, now, out)
            elif kind == "approval":
                await self._on_approval(message, now, out)
            else:
                raise CommandRefused(f"unknown message type {kind!r}")
        except ServiceUnavailable:
            raise  # the agent retries: a command is never dropped because Redis blinked
        except (RollguardError, ValueError, KeyError, TypeError) as exc:
            self._record(out, {"type": "command-refused", "at": now, "why": str(exc)}, alert=True)
        return out

    async def _on_command(self, message: dict[str, Any], now: float, out: ActuatorOutputs) -> None:
        command = Command.from_bytes(messages.dumps(message["command"]))
        verify(command, self.secret, now)
        if message.get("approval") == "required":
            await self.pending.put(command.service, command.command_id, command.to_bytes())
            self._record(out, {
                "type": "approval-needed", "at": now, "service": command.service,
                "command_id": command.command_id, "reason": command.reason,
                "how": f"rollguard approve {command.command_id} --by NAME",
            }, alert=True)
            return
        await self._execute(command, now, out, approved_by=None)

    async def _on_approval(self, message: dict[str, Any], now: float, out: ActuatorOutputs) -> None:
        command_id, by = messages.verify_approval(message, self.secret, now)
        stored = await self.pending.take(command_id)
        if stored is None:
            raise CommandRefused(f"approval of {command_id}: no command waits under that id")
        original = Command.from_bytes(stored)
        # The approval is the new authority: record who gave it and sign afresh, so a command
        # that waited longer than its expiry can still run once a person says so.
        approved = sign(dataclasses.replace(
            original,
            evidence={**original.evidence, "approved_by": by, "approved_at": now},
            expires_at=now + COMMAND_TTL_S,
        ), self.secret)
        await self._execute(approved, now, out, approved_by=by)

    async def _execute(self, command: Command, now: float, out: ActuatorOutputs,
                       approved_by: str | None) -> None:
        outcome = await self.store.execute(command, now)
        record = {
            "type": "outcome", "at": now, "service": command.service,
            "command_id": command.command_id, "op": command.op, "status": outcome.status,
            "epoch_before": outcome.epoch_before, "epoch_after": outcome.epoch_after,
            "message": outcome.message, "issued_by": command.issued_by,
            "approved_by": approved_by, "reason": command.reason,
        }
        out.outcomes.append(record)
        self._record(out, record, alert=outcome.status in ("applied", "conflict", "refused"))

    @staticmethod
    def _record(out: ActuatorOutputs, record: dict[str, Any], alert: bool) -> None:
        encoded = messages.dumps(record)
        out.audit.append(encoded)
        if alert:
            out.alerts.append(encoded)

