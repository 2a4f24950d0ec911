"""The actuator admits a commands-topic command once, then has the store apply it."""

from __future__ import annotations

from typing import Any, cast

import orjson

from rollguard.actions.actuator import Actuator
from rollguard.actions.admitted import Admitted
from rollguard.actions.approvals import PendingCommands
from rollguard.actions.commands import Command, new_command, sign
from rollguard.actions.pointer import PointerStore
from rollguard.actions.script import Outcome

SECRET = b"actuator-admit"
T = 1_800_000_000.0


class FakeStore:
    """Records what the actuator asks of the pointer store; admits everything."""

    address = "redis://fake"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def admit(self, command: Command, now: float,
                    received_at: float | None = None) -> Admitted:
        self.calls.append(("admit", command.command_id))
        return Admitted(command, received_at)

    async def apply(self, admitted: Admitted, now: float) -> Outcome:
        self.calls.append(("apply", admitted.command.command_id))
        return Outcome("applied", admitted.command.command_id, admitted.command.service,
                       epoch_before=1, epoch_after=2, message="rolled back")

    async def execute(self, command: Command, now: float,
                      received_at: float | None = None) -> Outcome:
        raise AssertionError("an admitted command is applied, not checked again")


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
