"""Rollback commands that wait for a person, kept in Redis until approved.

Key ``rollguard:pending:{service}`` is a hash: command id → the command's JSON. Taking a
command out is atomic (one Lua script), so two approvals of the same command run it once.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis

from actions.connect import unavailable

PENDING_PREFIX = "rollguard:pending:"
PENDING_INDEX = "rollguard:pending-index"

# KEYS[1] - the index hash (command id -> service)
# ARGV[1] - command id; ARGV[2] - the pending-hash key prefix
# return the command's JSON and removes it, or nil if there is none
LUA_TAKE = """
local service = redis.call('HGET', KEYS[1], ARGV[1])
if not service then return nil end
local key = ARGV[2] .. service
local command = redis.call('HGET', key, ARGV[1])
redis.call('HDEL', key, ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
return command
"""


class PendingCommands:
    """Commands awaiting approval, per service."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._take = client.register_script(LUA_TAKE)

    async def put(self, service: str, command_id: str, command: bytes) -> None:
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(PENDING_PREFIX + service, command_id, command)
                pipe.hset(PENDING_INDEX, command_id, service)
                await pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise unavailable(exc) from exc

    async def take(self, command_id: str) -> bytes | None:
        """Remove and return a pending command; None when none has that id."""
        try:
            result: Any = await self._take(keys=[PENDING_INDEX], args=[command_id, PENDING_PREFIX])
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise unavailable(exc) from exc
        return bytes(result) if result is not None else None

    async def list(self, service: str) -> dict[str, bytes]:
        try:
            found = await self.client.hgetall(PENDING_PREFIX + service)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise unavailable(exc) from exc
        return {_text(k): _bytes(v) for k, v in found.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value
