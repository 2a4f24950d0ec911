"""A rollback due while Redis is down, on a private redis-server stopped and restarted with
its append-only file: received in time, it is carried out once Redis is back however long
the outage (a fake clock makes it 400 s, longer than the expiry), with a recorded conflict
when a person moved the pointer meanwhile; replays stay refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from rollguard.actions.actuator import Actuator
from rollguard.actions.approvals import PendingCommands
from rollguard.actions.commands import Command, new_command, sign
from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import PointerStore
from rollguard.actions.respond import COMMAND_TTL_S
from rollguard.base.errors import ServiceUnavailable
from tests.support.pointer import SECRET, register_two_releases
from tests.support.private_redis import PrivateRedis

pytestmark = pytest.mark.integration

OUTAGE_S = COMMAND_TTL_S + 100.0  # longer than a command's expiry


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(name="canary")
async def fixture_canary(private_redis: PrivateRedis, service: str,
                         ) -> AsyncIterator[PointerStore]:
    """v1 stable, v2 on 50 % of traffic (epoch 2), in the private Redis."""
    client = async_redis_client(private_redis.url)
    store = PointerStore(client, SECRET)
    await register_two_releases(store, service)
    for fields in ({"release": "v1"}, {"release": "v2", "percent": 50.0}):
        (await store.issue(service, "promote", "ann", **fields)).raise_for_status()
    yield store
    await client.aclose()


def rollback(service: str, now: float) -> Command:
    """What a rule issues: drop the candidate, a compare-and-set on epoch 2."""
    return sign(new_command(service, "rollback", "rule:quality", now, expected_epoch=2,
                            reason="worse", evidence={"p_value": 0.001}), SECRET)


def message(command: Command) -> bytes:
    return orjson.dumps({"type": "command", "approval": None, "command": command.as_dict()})


async def outage(server: PrivateRedis, actuator: Actuator, value: bytes, received_at: float,
                 clock: FakeClock) -> None:
    """Redis stops as the command is received; it is back ``OUTAGE_S`` later."""
    await asyncio.to_thread(server.stop)
    with pytest.raises(ServiceUnavailable):
        await actuator.handle(value, received_at)
    alert = orjson.loads(actuator.waiting_alert(value, received_at, "connection refused"))
    assert alert["type"] == "waiting-on-redis" and alert["redis"].endswith(str(server.port))
    clock.now = received_at + OUTAGE_S
    await asyncio.to_thread(server.start)


def records(out: Any) -> list[dict[str, Any]]:
    return [orjson.loads(a) for a in out.audit]


async def test_a_rollback_received_in_time_is_applied_once_after_a_longer_outage(
        private_redis: PrivateRedis, canary: PointerStore, service: str) -> None:
    t = time.time()
    clock = FakeClock(t)
    actuator = Actuator(canary, PendingCommands(canary.client), SECRET, clock=clock)
    command = rollback(service, t)
    await outage(private_redis, actuator, message(command), t, clock)

    out = await actuator.handle(message(command), received_at=t)
    [applied] = records(out)
    assert (applied["status"], applied["waited_s"]) == ("applied", OUTAGE_S)
    assert out.alerts == out.audit, "the late outcome is the second notice to the operator"
    state = await canary.read(service)
    assert (state.candidate, state.epoch) == (None, 3)
    entry = (await canary.history(service))[-1]
    assert (entry["outcome"], entry["command_id"]) == ("applied", command.command_id)
    assert entry["late"] == f"carried out {OUTAGE_S:.0f} s after it was received: " \
                            "Redis was unreachable"
    assert entry["command"]["evidence"] == command.evidence == {"p_value": 0.001}
    assert len(await canary.history(service)) == 3, "history intact across the restart"

    [again] = records(await actuator.handle(message(command), received_at=t))
    assert (again["status"], again["code"]) == ("refused", "replayed")
    assert (await canary.read(service)).epoch == 3


async def test_a_pointer_moved_by_a_person_during_the_outage_gives_a_recorded_conflict(
        private_redis: PrivateRedis, canary: PointerStore, service: str) -> None:
    t = time.time()
    clock = FakeClock(t)
    actuator = Actuator(canary, PendingCommands(canary.client), SECRET, clock=clock)
    command = rollback(service, t)
    await outage(private_redis, actuator, message(command), t, clock)
    (await canary.issue(service, "promote", "ann", release="v2", percent=20.0)
     ).raise_for_status()

    out = await actuator.handle(message(command), received_at=t)
    [conflict] = records(out)
    assert (conflict["status"], conflict["code"]) == ("conflict", "epoch_moved")
    assert out.alerts == out.audit
    assert (await canary.read(service)).percent == 20.0
    entry = (await canary.history(service))[-1]
    assert (entry["outcome"], entry["command_id"]) == ("conflict", command.command_id)
    assert "late" in entry


async def test_a_command_first_read_after_its_expiry_is_still_refused(
        canary: PointerStore, service: str) -> None:
    """Receipt, not Redis's return, is what the expiry is judged by."""
    t = time.time()
    actuator = Actuator(canary, PendingCommands(canary.client), SECRET,
                        clock=FakeClock(t + OUTAGE_S))
    [refused] = records(await actuator.handle(message(rollback(service, t))))
    assert (refused["status"], refused["code"]) == ("refused", "expired")
    assert (await canary.read(service)).epoch == 2
