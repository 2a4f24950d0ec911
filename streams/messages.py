"""The JSON messages the worker writes to its output topics and reads from the commands topic.

Commands topic, one of:

- ``{"type": "command", "approval": "required" | null, "command": {...Command...}}``
- ``{"type": "approval", "v": 2, "service": str, "command_id": str, "by": str, "ts": float,
  "approval_id": str, "signature": hex}``, signed with the approver's own key
  (:func:`rollguard.actions.approvals.approval`)

Alerts and audit topics carry ``{"type": <kind>, "ts": ..., "service": ..., ...}`` objects
(with ``"drill": true`` when the service is a drill's, :func:`rollguard.detectors.names.is_drill`);
the dead-letter topic carries ``{"reason": code, "detail": str, "value": <original text>}``.
"""

from __future__ import annotations

from typing import Any

import orjson

from rollguard.actions.commands import Command
from rollguard.actions.ramping import Steered
from rollguard.actions.respond import Suppression
from rollguard.detectors.decision import Decision
from rollguard.detectors.names import drill_mark


def dumps(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def loads(value: bytes) -> dict[str, Any]:
    decoded = orjson.loads(value)
    if not isinstance(decoded, dict):
        raise ValueError("expected a JSON object")
    return decoded


def dead_letter(reason: str, detail: str, value: Any) -> bytes:
    """A rejected event with its reason; the original is kept (as text when it is bytes)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return dumps({"reason": reason, "detail": detail, "value": value})


def decision_messages(decision: Decision, response: Command | Suppression | None,
                      at: float) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The ``(alerts, audit, commands)`` messages of one decision and what it means for the
    pointer (:func:`rollguard.actions.respond.respond`); ``at`` is the wall-clock time.
    A drill service's records say so (``"drill": true``)."""
    record = {**decision.to_dict(), **drill_mark(decision.service)}
    if response is None:
        return ([dumps({"type": "alert", "at": at, **record})],
                [dumps({"type": "decision", "at": at, **record})], [])
    if isinstance(response, Suppression):
        note = dumps({"type": "rollback-suppressed", "at": at, "why": response.why, **record})
        return [note], [note], []
    approval = "required" if decision.requires_approval else None
    command = dumps({"type": "command", "approval": approval, "command": response.as_dict()})
    audit = dumps({"type": "decision", "at": at, "command_id": response.command_id, **record})
    return [], [audit], [command]


def rollout_messages(steered: Steered) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The ``(alerts, audit, commands)`` messages of a guarded rollout's verdicts
    (:func:`rollguard.actions.ramping.steer`); its commands need no approval: each moves
    within a plan a person signed."""
    return ([dumps(r) for r in steered.alerts], [dumps(r) for r in steered.records],
            [dumps({"type": "command", "approval": None, "command": c.as_dict()})
             for c in steered.commands])
