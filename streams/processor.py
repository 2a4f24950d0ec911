"""Turn one Kafka message of evaluation events into the worker's outputs.

No Kafka here: the Faust agent hands in the message and the service's stored state, and
sends what comes back. The release roles (stable, candidate) come from the version pointer,
so a flip made by hand is respected and a pinned service is left alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actions.commands import Command, new_command, sign
from actions.pointer import PointerState
from detectors.events import Event
from detectors.monitor import Decision, ServiceMonitor
from detectors.policy import Policy
from streams import messages
from streams.checkpoint import unpack
from streams.wire import read_message

# How long a rollback command may wait in the commands topic before it is refused as stale.
COMMAND_TTL_S = 300.0
NO_POINTER = "no version pointer is registered for this service"


@dataclass
class Outputs:
    """Messages to send, by topic role."""

    commands: list[bytes] = field(default_factory=list)
    alerts: list[bytes] = field(default_factory=list)
    audit: list[bytes] = field(default_factory=list)
    dead: list[bytes] = field(default_factory=list)
    events: int = 0
    decisions: list[Decision] = field(default_factory=list)


@dataclass
class EventProcessor:
    """Holds the live monitors of the services this worker owns."""

    policy: Policy
    secret: bytes
    clock: Callable[[], float] = time.time
    monitors: dict[str, ServiceMonitor] = field(default_factory=dict)

    def forget(self) -> None:
        """Drop the in-process monitors (after a rebalance); the table holds the truth."""
        self.monitors.clear()

    def state_of(self, service: str) -> bytes | None:
        """The live state of ``service`` as bytes, None when this worker holds none."""
        monitor = self.monitors.get(service)
        return monitor.to_bytes() if monitor is not None else None

    def monitor_for(self, service: str, stored: bytes | None) -> ServiceMonitor:
        monitor = self.monitors.get(service)
        if monitor is None:
            if stored:
                monitor = ServiceMonitor.from_bytes(unpack(stored)[1], self.policy)
            else:
                monitor = ServiceMonitor(service, self.policy)
            self.monitors[service] = monitor
        return monitor

    def handle(
        self, key: bytes | None, value: bytes | None, stored: bytes | None,
        pointer: PointerState | None, offset: int | None = None,
    ) -> tuple[str | None, Outputs]:
        """Process one message; returns the service whose state changed, and the outputs.

        ``stored`` is the service's table value (:mod:`streams.checkpoint`); a message at or
        below the offset it was stored through is already counted in it and is skipped.
        """
        out = Outputs()
        service = key.decode("utf-8", errors="replace") if key else None
        if service is not None and offset is not None and stored and service not in self.monitors:
            through = unpack(stored)[0]
            if through is not None and offset <= through:
                return None, out
        monitor: ServiceMonitor | None = None
        for item, raw, error in read_message(value):
            if item is None:
                assert error is not None
                out.dead.append(messages.dead_letter(error.reason, error.detail, raw))
                continue
            if service is None:
                service = item.service  # un-keyed producers: fine on one partition
            if item.service != service:
                detail = f"event for {item.service!r} in a message keyed {service!r}"
                out.dead.append(messages.dead_letter("key_mismatch", detail, raw))
                continue
            if monitor is None:
                monitor = self.monitor_for(service, stored)
                self._apply_roles(monitor, pointer)
            if isinstance(item, Event):
                out.events += 1
                decisions = monitor.observe(item)
            else:
                out.events += len(item)
                decisions = monitor.observe_block(item)
            for decision in decisions:
                self._route(decision, pointer, out)
        return (service if monitor is not None else None), out

    @staticmethod
    def _apply_roles(monitor: ServiceMonitor, pointer: PointerState | None) -> None:
        if pointer is not None:
            monitor.set_roles(pointer.stable, pointer.watched_release)

    def _route(self, decision: Decision, pointer: PointerState | None, out: Outputs) -> None:
        out.decisions.append(decision)
        record = decision.to_dict()
        now = self.clock()
        if decision.action != "rollback":
            out.alerts.append(messages.dumps({"type": "alert", "at": now, **record}))
            out.audit.append(messages.dumps({"type": "decision", "at": now, **record}))
            return
        blocked = self._why_not_act(decision, pointer)
        if blocked is not None:
            note = {"type": "rollback-suppressed", "at": now, "why": blocked, **record}
            out.alerts.append(messages.dumps(note))
            out.audit.append(messages.dumps(note))
            return
        assert pointer is not None
        command = self.rollback_command(decision, pointer, now)
        approval = "required" if decision.requires_approval else None
        out.commands.append(messages.dumps(
            {"type": "command", "approval": approval, "command": command.as_dict()}))
        out.audit.append(messages.dumps({"type": "decision", "at": now,
                                         "command_id": command.command_id, **record}))

    @staticmethod
    def _why_not_act(decision: Decision, pointer: PointerState | None) -> str | None:
        if decision.dry_run:
            return "dry-run: the policy evaluates this rule without acting on it"
        if pointer is None:
            return NO_POINTER
        if pointer.pinned:
            return "the service is pinned; automatic rollbacks are refused"
        if decision.release != pointer.watched_release:
            return f"{decision.release} is no longer the release under watch"
        return None

    def rollback_command(self, decision: Decision, pointer: PointerState, now: float) -> Command:
        """The signed command for a rollback decision; its idempotency key makes a repeat
        of the same decision (after a restart, say) change nothing."""
        components = tuple(decision.components)
        key = f"{decision.service}:{decision.release}:rollback:{','.join(components) or '*'}"
        evidence: dict[str, Any] = {"verdict": decision.verdict, **decision.evidence}
        command = new_command(
            decision.service,
            "rollback",
            f"rule:{decision.evidence.get('rule', 'policy')}",
            now,
            ttl_s=COMMAND_TTL_S,
            idempotency_key=key,
            release=decision.to or None,
            components=components,
            reason=decision.reason,
            evidence=evidence,
            expected_epoch=pointer.epoch,
        )
        return sign(command, self.secret)
