"""Rollback commands that wait for a person, and the signed approvals that release them.

A waiting command is kept in its service's ``pending`` hash (:mod:`rollguard.actions.keys`): command
id → the command's JSON; who approved it so far is in the ``approvers`` hash. Adding an
approver, and taking the command out once enough people approved, is one Lua script, so
two approvals of the same command run it once and one person never counts twice. An
approval names the service and the command, who approves and when, and its own id, signed
with the approver's own key (actions/operators.py; docs/pointer-protocol.md, section 8).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from rollguard.actions.connect import PERMISSION_ERRORS, TRANSIENT_ERRORS, AsyncClient, unavailable
from rollguard.actions.keys import ServiceKeys, namespace
from rollguard.base.errors import CommandRefused

# How long an approval may wait in the commands topic before it is refused as stale.
APPROVAL_MAX_AGE_S = 300.0
# Approvals without this version were signed with the deployment secret: refused.
APPROVAL_VERSION = 2

# KEYS[1] - the service's pending hash (command id -> command JSON)
# ARGV[1] - command id
# return the command's JSON, removed from the hash, or nil if none waits under that id
LUA_TAKE = """
local command = redis.call('HGET', KEYS[1], ARGV[1])
if not command then return nil end
redis.call('HDEL', KEYS[1], ARGV[1])
return command
"""

# KEYS[1] - the pending hash; KEYS[2] - the approvers hash (command id -> JSON list)
# ARGV[1] - command id; ARGV[2] - approver; ARGV[3] - how many approvers the command needs
# return {'missing'}, {'duplicate', approvers}, {'waiting', approvers} or
#        {'taken', approvers, command} (then removed from both hashes)
LUA_APPROVE = """
local command = redis.call('HGET', KEYS[1], ARGV[1])
if not command then return {'missing'} end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
local approvers = {}
if raw then approvers = cjson.decode(raw) end
for _, name in ipairs(approvers) do
  if name == ARGV[2] then return {'duplicate', raw} end
end
table.insert(approvers, ARGV[2])
local encoded = cjson.encode(approvers)
if #approvers >= tonumber(ARGV[3]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return {'taken', encoded, command}
end
redis.call('HSET', KEYS[2], ARGV[1], encoded)
return {'waiting', encoded}
"""


class PendingCommands:
    """Commands awaiting approval, per service."""

    def __init__(self, client: AsyncClient, prefix: str | None = None) -> None:
        self.client = client
        self.prefix = namespace(prefix)
        self._take = client.register_script(LUA_TAKE)
        self._approve = client.register_script(LUA_APPROVE)

    def _key(self, service: str) -> str:
        return ServiceKeys.of(service, self.prefix).pending

    async def get(self, service: str, command_id: str) -> tuple[bytes, tuple[str, ...]] | None:
        """A waiting command and who approved it so far; None when none has that id."""
        keys = ServiceKeys.of(service, self.prefix)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hget(keys.pending, command_id)
                pipe.hget(keys.approvers, command_id)
                command, approvers = await pipe.execute()
        except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
            raise unavailable(exc) from exc
        if command is None:
            return None
        return _bytes(command), tuple(orjson.loads(approvers)) if approvers else ()

    async def approve(self, service: str, command_id: str, approver: str, needed: int,
                      ) -> tuple[str, tuple[str, ...], bytes | None]:
        """Add ``approver`` to a waiting command: ``(status, approvers, command)`` where
        status is ``missing``, ``duplicate``, ``waiting`` or ``taken`` (then the command,
        removed, is returned: enough people approved)."""
        keys = ServiceKeys.of(service, self.prefix)
        try:
            result: Any = await self._approve(keys=[keys.pending, keys.approvers],
                                              args=[command_id, approver, needed])
        except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
            raise unavailable(exc) from exc
        status = _text(result[0])
        approvers = tuple(orjson.loads(result[1])) if len(result) > 1 else ()
        command = _bytes(result[2]) if len(result) > 2 else None
        return status, approvers, command

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


@dataclass(frozen=True)
class Approval:
    """One approval read from the commands topic, not yet checked."""

    service: str
    command_id: str
    by: str
    ts: float
    approval_id: str
    signature: str

    def canonical(self) -> bytes:
        """The bytes the signature covers (every field but it, sorted, compact)."""
        return _canonical(self.service, self.command_id, self.by, self.ts, self.approval_id)


def _canonical(service: str, command_id: str, by: str, ts: float, approval_id: str) -> bytes:
    return orjson.dumps({"v": APPROVAL_VERSION, "service": service, "command_id": command_id,
                         "by": by, "ts": ts, "approval_id": approval_id},
                        option=orjson.OPT_SORT_KEYS)


def approval(service: str, command_id: str, by: str, key: bytes, ts: float,
             approval_id: str | None = None) -> bytes:
    """An approval of a waiting command by operator ``by``, signed with their own key (a
    commands-topic message); ``approval_id`` (default: random) names its outcome records."""
    approval_id = approval_id or uuid.uuid4().hex
    signature = hmac.new(key, _canonical(service, command_id, by, ts, approval_id),
                         hashlib.sha256).hexdigest()
    return orjson.dumps({"type": "approval", "v": APPROVAL_VERSION, "service": service,
                         "command_id": command_id, "by": by, "ts": ts,
                         "approval_id": approval_id, "signature": signature})


def read_approval(message: dict[str, Any]) -> Approval:
    """The approval a commands-topic message holds; CommandRefused when malformed, of the
    older kind (signed with the deployment secret) or naming no approver."""
    command_id = str(message.get("command_id", ""))
    if message.get("v") != APPROVAL_VERSION:
        raise CommandRefused(f"approval of {command_id}: not signed with an approver's own "
                             "key (an older `rollguard approve`); approvals now need one: "
                             "`rollguard operator add NAME`")
    try:
        given = Approval(str(message["service"]), str(message["command_id"]),
                         str(message["by"]), float(message["ts"]),
                         str(message["approval_id"]), str(message["signature"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CommandRefused(f"approval: malformed ({exc})") from exc
    if not given.by.strip():
        raise CommandRefused(f"approval of {command_id}: no approver named")
    return given


def check_approval(given: Approval, key: bytes, now: float,
                   max_age_s: float = APPROVAL_MAX_AGE_S) -> Approval:
    """``given`` if signed with ``key`` (its approver's) and recent; else CommandRefused.

    >>> msg = orjson.loads(approval("chat", "c1", "ana", b"k" * 32, 100.0, "a1"))
    >>> check_approval(read_approval(msg), b"k" * 32, now=110.0).by
    'ana'
    >>> check_approval(read_approval(msg), b"x" * 32, now=110.0)
    Traceback (most recent call last):
    rollguard.base.errors.CommandRefused: approval of c1: bad signature
    """
    expected = hmac.new(key, given.canonical(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.signature, expected):
        raise CommandRefused(f"approval of {given.command_id}: bad signature")
    if now - given.ts > max_age_s:
        raise CommandRefused(f"approval of {given.command_id}: expired")
    return given
