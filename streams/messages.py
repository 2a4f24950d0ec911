"""The JSON messages the worker writes to its output topics and reads from the commands topic.

Commands topic, one of:

- ``{"type": "command", "approval": "required" | null, "command": {...Command...}}``
- ``{"type": "approval", "command_id": str, "by": str, "ts": float, "signature": hex}``

Alerts and audit topics carry ``{"type": <kind>, "ts": ..., "service": ..., ...}`` objects;
the dead-letter topic carries ``{"reason": code, "detail": str, "value": <original text>}``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from actions.commands import Command
from actions.respond import Suppression
from detectors.decision import Decision
from rollguard.errors import CommandRefused


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


def _approval_digest(command_id: str, by: str, ts: float, secret: bytes) -> str:
    canonical = orjson.dumps({"command_id": command_id, "by": by, "ts": ts},
                             option=orjson.OPT_SORT_KEYS)
    return hmac.new(secret, canonical, hashlib.sha256).hexdigest()


def approval(command_id: str, by: str, ts: float, secret: bytes) -> bytes:
    """A signed approval of a command that waits for a person."""
    return dumps({"type": "approval", "command_id": command_id, "by": by, "ts": ts,
                  "signature": _approval_digest(command_id, by, ts, secret)})


def verify_approval(message: dict[str, Any], secret: bytes, now: float,
                    max_age_s: float = 300.0) -> tuple[str, str]:
    """Return ``(command_id, by)`` of a valid approval; raise CommandRefused otherwise.

    >>> msg = loads(approval("c1", "ana", 100.0, b"s"))
    >>> verify_approval(msg, b"s", now=110.0)
    ('c1', 'ana')
    >>> verify_approval(msg, b"other", now=110.0)
    Traceback (most recent call last):
    rollguard.errors.CommandRefused: approval of c1: bad signature
    """
    try:
        command_id, by, ts = str(message["command_id"]), str(message["by"]), float(message["ts"])
        signature = str(message["signature"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CommandRefused(f"approval: malformed ({exc})") from exc
    if not by.strip():
        raise CommandRefused(f"approval of {command_id}: no approver named")
    if not hmac.compare_digest(signature, _approval_digest(command_id, by, ts, secret)):
        raise CommandRefused(f"approval of {command_id}: bad signature")
    if now - ts > max_age_s:
        raise CommandRefused(f"approval of {command_id}: expired")
    return command_id, by


def decision_messages(decision: Decision, response: Command | Suppression | None,
                      at: float) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The ``(alerts, audit, commands)`` messages of one decision and what it means for the
    pointer (:func:`actions.respond.respond`); ``at`` is the wall-clock time."""
    record = decision.to_dict()
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
