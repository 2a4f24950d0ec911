"""The expiry of a command is judged as of its receipt: one received in time stays valid
while it waits for Redis, however long (a fake clock; a valid command needs no Redis)."""

from __future__ import annotations

import pytest

from rollguard.actions.commands import new_command, sign
from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import Admitted, PointerStore
from rollguard.actions.script import LATE_S, late_by
from rollguard.base.errors import ServiceUnavailable

SECRET = b"admit-secret"
T = 1_800_000_000.0
NOBODY = "redis://127.0.0.1:1/0"  # nothing listens: any Redis call fails at once


@pytest.fixture(name="store")
def fixture_store() -> PointerStore:
    return PointerStore(async_redis_client(NOBODY), SECRET)


@pytest.mark.parametrize("received_at", [T, T + 299.0])
async def test_a_command_received_in_time_is_admitted_however_late_it_runs(
        store: PointerStore, received_at: float) -> None:
    command = sign(new_command("chat", "rollback", "rule:x", T, ttl_s=300.0), SECRET)
    admitted = await store.admit(command, now=T + 400.0, received_at=received_at)
    assert admitted == Admitted(command, received_at)


@pytest.mark.parametrize("received_at", [None, T + 301.0])
async def test_a_command_received_after_its_expiry_is_refused(
        store: PointerStore, received_at: float | None) -> None:
    """The refusal is recorded in Redis: here unreachable, so the refusal waits too."""
    command = sign(new_command("chat", "rollback", "rule:x", T, ttl_s=300.0), SECRET)
    with pytest.raises(ServiceUnavailable):
        await store.admit(command, now=T + 400.0, received_at=received_at)


@pytest.mark.parametrize(("now", "received_at", "late"), [
    (T, None, None), (T + LATE_S / 2, T, None), (T + 400.0, T, 400.0),
    (T, T + 5.0, None),  # received "later" than now (clock steps): never negative lateness
])
def test_lateness_counts_from_receipt(now: float, received_at: float | None,
                                      late: float | None) -> None:
    assert late_by(now, received_at) == late
