"""Rollback commands that wait for a person, and the signed approvals that release them.

A waiting command is kept in its service's ``pending`` hash (:mod:`actions.keys`): command
id → the command's JSON. Taking it out is one Lua script, so two approvals of the same
command run it once. An approval names the service and the command, who approves and when,
signed with the shared secret (docs/wire-format.md, the commands topic).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from actions.connect import PERMISSION_ERRORS, TRANSIENT_ERRORS, AsyncClient, unavailable
from actions.keys import ServiceKeys, namespace
from rollguard.errors import CommandRefused

# How long an approval may wait in the commands topic before it is refused as stale.
APPROVAL_MAX_AGE_S = 300.0

# KEYS[1] - the service's pending hash (command id -> command JSON)
# ARGV[1] - command id
# return the command's JSON, removed from the hash, or nil if none waits under that id
LUA_TAKE = """
local command = redis.call('HGET', KEYS[1], ARGV[1])
if not command then return nil end
redis.call('HDEL', KEYS[1], ARGV[1])
return command
"""


class PendingCommands:
    """Commands awaiting approval, per service."""

    def __init__(self, client: AsyncClient, prefix: str | None = None) -> None:
        self.client = client
        self.prefix = namespace(prefix)
        self._take = client.register_script(LUA_TAKE)

    def _key(self, service: str) -> str:
        return ServiceKeys.of(service, self.prefix).pending

    async def put(self, service: str, command_id: str, command: bytes) -> None:
        try:
            await self.client.hset(self._key(service), command_id, command)
        except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
            raise unavailable(exc) from exc

    async def take(self, service: str, command_id: str) -> bytes | None:
        """Remove and return a pending command; None when none has that id."""
        try:
            result: Any = await self._take(keys=[self._key(service)], args=[command_id])
        except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
            raise unavailable(exc) from exc
        return bytes(result) if result is not None else None

    async def list(self, service: str) -> dict[str, bytes]:
        try:
            found = await self.client.hgetall(self._key(service))
        except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
            raise unavailable(exc) from exc
        return {_text(k): _bytes(v) for k, v in found.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _digest(service: str, command_id: str, by: str, ts: float, secret: bytes) -> str:
    canonical = orjson.dumps({"service": service, "command_id": command_id, "by": by, "ts": ts},
                             option=orjson.OPT_SORT_KEYS)
    return hmac.new(secret, canonical, hashlib.sha256).hexdigest()


def approval(service: str, command_id: str, by: str, ts: float, secret: bytes) -> bytes:
    """A signed approval of a command that waits for a person (a commands-topic message)."""
    return orjson.dumps({"type": "approval", "service": service, "command_id": command_id,
                         "by": by, "ts": ts,
                         "signature": _digest(service, command_id, by, ts, secret)})


def verify_approval(message: dict[str, Any], secret: bytes, now: float,
                    max_age_s: float = APPROVAL_MAX_AGE_S) -> tuple[str, str, str]:
    """Return ``(service, command_id, by)`` of a valid approval; raise CommandRefused otherwise.

    >>> msg = orjson.loads(approval("chat", "c1", "ana", 100.0, b"s"))
    >>> verify_approval(msg, b"s", now=110.0)
    ('chat', 'c1', 'ana')
    >>> verify_approval(msg, b"other", now=110.0)
    Traceback (most recent call last):
    rollguard.errors.CommandRefused: approval of c1: bad signature
    """
    try:
        service, command_id = str(message["service"]), str(message["command_id"])
        by, ts = str(message["by"]), float(message["ts"])
        signature = str(message["signature"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CommandRefused(f"approval: malformed ({exc})") from exc
    if not by.strip():
        raise CommandRefused(f"approval of {command_id}: no approver named")
    if not hmac.compare_digest(signature, _digest(service, command_id, by, ts, secret)):
        raise CommandRefused(f"approval of {command_id}: bad signature")
    if now - ts > max_age_s:
        raise CommandRefused(f"approval of {command_id}: expired")
    return service, command_id, by
