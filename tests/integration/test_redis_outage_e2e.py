"""End to end on the real broker and a private redis-server: a regression's rollback falls
due while Redis is down, stays due past its expiry, and is applied once Redis is back —
also when the worker was killed during the outage and restarted."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import PointerStore
from rollguard.demo.run import prepare_service, promote
from rollguard.streams.connect import prepare_topics
from tests.support.e2e import (
    REGRESSION,
    T0,
    applied_rollbacks,
    new_service,
    produce,
    read_topic,
    scenario_events,
    stop,
    wait_for_audit,
)
from tests.support.private_redis import PrivateRedis
from tests.support.runs import IsolatedRun, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

COMMAND_TTL_S = 3.0  # the worker's ROLLGUARD_COMMAND_TTL_S here: the outage outlasts it


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("outage", partitions=2)
    yield run
    await run.delete_topics()


@pytest.fixture(name="redis_server", scope="module")
def fixture_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """One private redis-server for the module's tests, which stop and start it."""
    server = PrivateRedis(tmp_path_factory.mktemp("outage-redis"))
    server.start()
    yield server
    server.stop()


def waiting(records: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("type") == "waiting-on-redis"
            and r.get("service") == service]


@dataclass
class Outage:
    """A canary whose regression's rollback fell due while the private Redis was down."""

    store: PointerStore
    service: str
    before: list[dict[str, Any]]  # the service's history before the outage
    sent: dict[str, Any]  # the rollback command on the topic


def start(run: IsolatedRun, redis_server: PrivateRedis) -> subprocess.Popen[bytes]:
    return run.start_worker(REDIS_URL=redis_server.url,
                            ROLLGUARD_COMMAND_TTL_S=str(COMMAND_TTL_S))


async def rollback_due_while_down(run: IsolatedRun, redis_server: PrivateRedis) -> Outage:
    """The first part of a regression read with Redis up; Redis stopped; the rest read:
    the rollback falls due and the worker alerts that it waits for Redis. Returns once the
    command's expiry has passed (time must pass here), Redis still down."""
    service, secret = new_service(), run.secret.encode()
    store = PointerStore(async_redis_client(redis_server.url), secret)
    await prepare_service(store, service, secret)
    await promote(store, service, "v2", 50, secret)
    before = await store.history(service)
    events = scenario_events(service, REGRESSION)
    onset = next(i for i, e in enumerate(events) if e["ts"] >= REGRESSION.regression_at + T0)
    cut = onset + (len(events) - onset) // 6  # inside the regression, before a decision
    await produce(run, events[:cut])
    await wait_processed(run)
    assert (await store.read(service)).candidate == "v2", "decided before the outage"
    await asyncio.to_thread(redis_server.stop)
    await produce(run, events[cut:])
    await wait_for_audit(run, lambda found: bool(waiting(found, service)), timeout=90)
    [sent] = [c["command"] for c in await read_topic(run.topic("commands"))
              if c.get("type") == "command"]
    await asyncio.sleep(max(0.0, sent["expires_at"] - time.time()) + 0.5)
    return Outage(store, service, before, sent)


async def applied_after_return(run: IsolatedRun, redis_server: PrivateRedis,
                               outage: Outage) -> list[dict[str, Any]]:
    """Redis started again: wait for the command's outcome; the run's audit records."""
    await asyncio.to_thread(redis_server.start)
    audit = await wait_for_audit(run, lambda found: any(
        r.get("type") == "outcome" and r.get("command_id") == outage.sent["command_id"]
        for r in found), timeout=60)
    await wait_processed(run)
    return audit


async def assert_applied_once_late(run: IsolatedRun, redis_server: PrivateRedis,
                                   outage: Outage) -> None:
    """Rolled back once, by the command sent, late, with its original evidence; the
    history from before the outage intact; the operator told it waited, and its outcome."""
    store, service, sent = outage.store, outage.service, outage.sent
    history = await store.history(service, count=100)
    pointer = await store.read(service)
    await store.client.aclose()
    assert history[:len(outage.before)] == outage.before, "history intact across the restart"
    [applied] = applied_rollbacks(history)
    assert applied["command_id"] == sent["command_id"] and "late" in applied
    assert applied["command"]["evidence"] == sent["evidence"], "the original evidence"
    assert pointer.candidate is None and pointer.active == "v1"
    entries = [(h["outcome"], h.get("code", "")) for h in history[len(outage.before):]]
    assert entries == [("applied", "")], "one entry: no replays read while it waited"
    audit = await read_topic(run.topic("audit"))
    assert [r["status"] for r in audit if r.get("type") == "outcome"] == ["applied"]
    alerts = await read_topic(run.topic("alerts"))
    notices = waiting(alerts, service)
    assert notices and {a["command_id"] for a in notices} == {sent["command_id"]}
    assert notices[0]["redis"] == f"redis://127.0.0.1:{redis_server.port}"
    assert [a for a in alerts if a.get("type") == "outcome"
            and a.get("command_id") == sent["command_id"]], "the second notice: applied"


async def test_a_rollback_due_while_redis_is_down_is_applied_once_it_is_back(
        run: IsolatedRun, redis_server: PrivateRedis) -> None:
    await prepare_topics(run.settings())
    worker = start(run, redis_server)
    try:
        outage = await rollback_due_while_down(run, redis_server)
        audit = await applied_after_return(run, redis_server, outage)
    finally:
        stop(worker)
    [outcome] = [r for r in audit if r.get("type") == "outcome"]
    assert outcome["status"] == "applied" and outcome["waited_s"] > COMMAND_TTL_S
    await assert_applied_once_late(run, redis_server, outage)


async def test_a_worker_killed_during_the_outage_applies_the_rollback_after_its_restart(
        run: IsolatedRun, redis_server: PrivateRedis) -> None:
    """SIGKILL while the command waits, past its expiry: the next worker reads it again,
    judges its expiry by the broker's receipt (not its own first read), and applies it."""
    await prepare_topics(run.settings())
    worker = start(run, redis_server)
    try:
        outage = await rollback_due_while_down(run, redis_server)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    worker = start(run, redis_server)
    try:
        # the restarted worker waits for Redis too, and says so, before Redis returns
        await wait_for_audit(run, lambda found: len(waiting(found, outage.service)) >= 2,
                             timeout=90)
        audit = await applied_after_return(run, redis_server, outage)
    finally:
        stop(worker)
    outcomes = [r for r in audit if r.get("type") == "outcome"]
    assert [(r["status"], r["command_id"]) for r in outcomes] == [
        ("applied", outage.sent["command_id"])], "not refused as expired, and applied once"
    assert outcomes[0]["waited_s"] > COMMAND_TTL_S
    await assert_applied_once_late(run, redis_server, outage)
