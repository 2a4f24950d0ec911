"""Fakes of the worker's edges for unit tests: a Faust topic whose sends are logged, and a
pointer store that admits and applies every command."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from rollguard.actions.admitted import Admitted
from rollguard.actions.commands import Command
from rollguard.actions.script import Outcome

Log = list[tuple[str, ...]]


@dataclass(eq=False)
class Delivery:
    """What a fake send returns: awaiting it means the message is in Kafka."""

    log: Log
    topic: str
    value: bytes

    def __await__(self) -> Generator[Any, None, None]:
        self.log.append(("delivered", self.topic, self.value.decode()))
        return
        yield


@dataclass
class FakeTopic:
    """A topic whose sends are logged as ``("send", name, value)``."""

    name: str
    log: Log

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, key: bytes | None, value: bytes) -> Delivery:
        self.log.append(("send", self.name, value.decode()))
        return Delivery(self.log, self.name, value)


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
