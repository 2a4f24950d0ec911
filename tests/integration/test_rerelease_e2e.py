"""On the real broker and Redis: promote v2, a regression, a rollback; promote v2 again (the
fix), another regression, and a second rollback — the release is judged afresh."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rollguard.actions.pointer import PointerStore
from rollguard.actions.pointer_cache import TTL_S
from rollguard.demo.run import promote
from tests.integration.e2e_support import (
    new_service,
    produce,
    scenario_events,
    setup_service,
)
from tests.integration.test_worker_e2e import REGRESSION, applied_rollbacks, start, stop
from tests.support.runs import IsolatedRun, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("e2e-rerelease", partitions=2)
    yield run
    await run.delete_topics()


async def rolled_back(store: PointerStore, service: str, count: int) -> None:
    """Wait until ``count`` rollbacks of ``service`` applied."""
    async def done() -> bool:
        return len(applied_rollbacks(await store.history(service, count=200))) >= count
    for _ in range(450):
        if await done():
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{service}: fewer than {count} rollbacks applied")


async def test_a_release_promoted_again_after_a_rollback_is_rolled_back_again(
        run: IsolatedRun) -> None:
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    second = scenario_events(service, REGRESSION, seed=8)
    for event in second:  # later in event time, new event ids
        event["ts"] = float(event["ts"]) + REGRESSION.duration
        event["event_id"] = f"{event['event_id']}-again"
    worker = start(run)
    try:
        await produce(run, scenario_events(service, REGRESSION))
        await rolled_back(store, service, 1)
        assert (await store.read(service)).candidate is None
        await promote(store, service, "v2", 50, run.secret.encode())
        # The worker renews pointers older than TTL_S every TTL_S, so the one it reads is at
        # most about 2 TTL_S old. Here 20 minutes of event time take a second of wall time,
        # so without this wait the whole second regression could be judged by the pointer
        # from before the promote; in a live stream that is 2 s of it.
        await asyncio.sleep(TTL_S * 2.5)
        await produce(run, second)
        await rolled_back(store, service, 2)
        await wait_processed(run)
    finally:
        stop(worker)
    history = await store.history(service, count=200)
    rollbacks = applied_rollbacks(history)
    assert len(rollbacks) == 2
    keys = [r["idempotency_key"] for r in rollbacks]
    assert keys[0] != keys[1] and all(k.startswith(f"{service}:v2@") for k in keys)
    assert not [h for h in history if h.get("outcome") == "already_applied"]
    state = await store.read(service)
    assert state.candidate is None and state.active == "v1"
    await store.client.aclose()
