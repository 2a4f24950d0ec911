"""End to end on the real broker and a private redis-server: a regression's rollback falls
due while Redis is down, stays due past its expiry, and is applied once Redis is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from actions.connect import async_redis_client
from actions.pointer import PointerStore
from rollguard.demo.run import prepare_service, promote
from streams.connect import prepare_topics
from tests.integration.actions.private_redis import PrivateRedis
from tests.integration.e2e_support import (
    T0,
    new_service,
    produce,
    read_topic,
    scenario_events,
    wait_for_audit,
)
from tests.integration.test_worker_e2e import REGRESSION, applied_rollbacks, stop
from tests.support.runs import IsolatedRun, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

COMMAND_TTL_S = 3.0  # the worker's ROLLGUARD_COMMAND_TTL_S here: the outage outlasts it


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("outage", partitions=2)
    yield run
    await run.delete_topics()


@pytest.fixture(name="redis_server")
def fixture_redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def waiting(records: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("type") == "waiting-on-redis"
            and r.get("service") == service]


async def test_a_rollback_due_while_redis_is_down_is_applied_once_it_is_back(
        run: IsolatedRun, redis_server: PrivateRedis) -> None:
    service, secret = new_service(), run.secret.encode()
    await prepare_topics(run.settings())
    client = async_redis_client(redis_server.url)
    store = PointerStore(client, secret)
    await prepare_service(store, service, secret)
    await promote(store, service, "v2", 50, secret)
    before = await store.history(service)
    events = scenario_events(service, REGRESSION)
    onset = next(i for i, e in enumerate(events) if e["ts"] >= REGRESSION.regression_at + T0)
    cut = onset + (len(events) - onset) // 6  # inside the regression, before a decision
    worker = run.start_worker(REDIS_URL=redis_server.url,
                              ROLLGUARD_COMMAND_TTL_S=str(COMMAND_TTL_S))
    try:
        await produce(run, events[:cut])
        await wait_processed(run)
        assert (await store.read(service)).candidate == "v2", "decided before the outage"
        await asyncio.to_thread(redis_server.stop)
        await produce(run, events[cut:])
        await wait_for_audit(run, lambda found: bool(waiting(found, service)), timeout=90)
        [sent] = [c["command"] for c in await read_topic(run.topic("commands"))
                  if c.get("type") == "command"]
        # Let the command's expiry pass while Redis is still down (time must pass here).
        await asyncio.sleep(max(0.0, sent["expires_at"] - time.time()) + 0.5)
        await asyncio.to_thread(redis_server.start)
        audit = await wait_for_audit(run, lambda found: any(
            r.get("type") == "outcome" and r.get("command_id") == sent["command_id"]
            for r in found), timeout=60)
        await wait_processed(run)
    finally:
        stop(worker)
    [outcome] = [r for r in audit if r.get("type") == "outcome"]
    assert outcome["status"] == "applied" and outcome["waited_s"] > COMMAND_TTL_S
    history = await store.history(service, count=100)
    pointer = await store.read(service)
    await client.aclose()
    assert history[:len(before)] == before, "history intact across the restart"
    [applied] = applied_rollbacks(history)
    assert applied["command_id"] == sent["command_id"] and "late" in applied
    assert applied["command"]["evidence"] == sent["evidence"], "the original evidence"
    assert pointer.candidate is None and pointer.active == "v1"
    alerts = await read_topic(run.topic("alerts"))
    [alert] = waiting(alerts, service)
    assert alert["command_id"] == sent["command_id"]
    assert alert["redis"] == f"redis://127.0.0.1:{redis_server.port}"
    assert [a for a in alerts if a.get("type") == "outcome"
            and a.get("command_id") == sent["command_id"]], "the second notice: applied"
