"""Signed commands and releases for the pointer tests (the fixtures are in
tests/integration/actions/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from rollguard.actions.commands import Command, Op, new_command, sign
from rollguard.actions.operators import OperatorKey
from rollguard.actions.pointer import Outcome, PointerStore

SECRET = b"test-secret"

Issue = Callable[..., Awaitable[Outcome]]
MakeOperator = Callable[[str], Awaitable[OperatorKey]]


def command(service: str, op: Op, by: str = "ann", **fields: object) -> Command:
    """A signed command, valid for five minutes from now."""
    return sign(new_command(service, op, by, time.time(), **fields), SECRET)  # type: ignore[arg-type]


async def register_two_releases(store: PointerStore, service: str) -> None:
    """v1 and v2 registered (one component each), for tests of a private Redis."""
    for name in ("v1", "v2"):
        await store.register_release(service, name, {"model": f"m-{name}"})


def message(cmd: Command | dict[str, Any], approval_needed: bool = False) -> bytes:
    """A commands-topic message, as the monitor or `rollguard approve` put one."""
    body = cmd.as_dict() if isinstance(cmd, Command) else cmd
    return orjson.dumps({"type": "command", "approval": "required" if approval_needed else None,
                         "command": body})
