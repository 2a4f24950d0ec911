"""The actuator admits a commands-topic command once, then has the store apply it."""

from __future__ import annotations

from typing import Any, cast

import orjson

from rollguard.actions.actuator import Actuator
from rollguard.actions.approvals import PendingCommands
from rollguard.actions.commands import new_command, sign
from rollguard.actions.pointer import PointerStore
from tests.support.fakes import FakeStore

SECRET = b"actuator-admit"
T = 1_800_000_000.0


async def test_a_command_is_admitted_once_and_applied() -> None:
    """One admission (signature and expiry) and one application per command message."""
    store = FakeStore()
    actuator = Actuator(cast(PointerStore, store), cast(PendingCommands, None), SECRET,
                        clock=lambda: T)
    command = sign(new_command("chat", "rollback", "rule:x", T, ttl_s=300.0), SECRET)
    message: dict[str, Any] = {"type": "command", "command": orjson.loads(command.to_bytes())}
    out = await actuator.handle(orjson.dumps(message), received_at=T)
    assert store.calls == [("admit", command.command_id), ("apply", command.command_id)]
    assert [o["status"] for o in out.outcomes] == ["applied"]
