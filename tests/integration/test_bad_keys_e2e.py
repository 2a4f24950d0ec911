"""On the real broker and Redis: messages whose key is no service name are dead letters with
a reason, and the worker goes on judging every other service."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator

import orjson
import pytest

from tests.support.e2e import (
    REGRESSION,
    applied_rollbacks,
    new_service,
    produce,
    read_topic,
    scenario_events,
    setup_service,
    start,
    stop,
)
from tests.support.runs import IsolatedRun, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

BAD_KEYS = [b"a b", b"svc:x", b"{svc}", "caf\u00e9".encode(), b"\xff\xfe", b"x" * 129]


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("e2e-keys", partitions=2)
    yield run
    await run.delete_topics()


async def test_bad_keys_between_a_regressions_events_leave_one_rollback(
        run: IsolatedRun) -> None:
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    events = scenario_events(service, REGRESSION)
    half = len(events) // 2
    bad = [(key, orjson.dumps([{**events[0], "service": "x"}])) for key in BAD_KEYS]
    worker = start(run)
    try:
        await produce(run, events[:half], raw_lines=bad)
        await produce(run, events[half:], raw_lines=bad)
        await wait_processed(run)
    finally:
        stop(worker)
    assert len(applied_rollbacks(await store.history(service, count=100))) == 1
    await store.client.aclose()
    dead = await read_topic(run.topic("dead"))
    reasons = collections.Counter(d["reason"] for d in dead)
    assert reasons == {"bad_service_key": 2 * len(BAD_KEYS)}
