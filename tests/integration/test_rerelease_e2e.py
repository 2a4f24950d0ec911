"""On the real broker and Redis: promote v2, a regression, a rollback; promote v2 again (the
fix), another regression, and a second rollback — the release is judged afresh."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rollguard.actions.pointer import PointerStore
from rollguard.actions.pointer_cache import TTL_S
from rollguard.demo.run import promote
from tests.support.e2e import (
    REGRESSION,
    applied_rollbacks,
    new_service,
    produce,
    scenario_events,
    scrape,
    setup_service,
    stop,
)
from tests.support.ports import free_port
from tests.support.runs import IsolatedRun, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("e2e-rerelease", partitions=2)
    yield run
    await run.delete_topics()


async def pointer_epoch_reached(url: str, service: str, epoch: int) -> None:
    """Wait until the worker judges ``service`` by a pointer of ``epoch`` or later: its
    ``rollguard_pointer_epoch`` says so, or it holds no copy (the next message reads Redis)."""
    key = ("rollguard_pointer_epoch", frozenset({("service", service)}))
    deadline = asyncio.get_running_loop().time() + 20 * TTL_S
    while asyncio.get_running_loop().time() < deadline:
        samples = await scrape(url)
        if samples and (key not in samples or samples[key] >= epoch):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the worker never held epoch {epoch} of {service}'s pointer")


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
    metrics = f"127.0.0.1:{free_port()}"
    worker = run.start_worker(ROLLGUARD_METRICS_ADDR=metrics)
    try:
        await produce(run, scenario_events(service, REGRESSION))
        await rolled_back(store, service, 1)
        assert (await store.read(service)).candidate is None
        await promote(store, service, "v2", 50, run.secret.encode())
        # Here 20 minutes of event time take a second of wall time, so the second regression
        # must wait until the worker judges by the pointer of the promote (it renews its
        # copies every TTL_S): its /metrics say which epoch it holds.
        promoted = (await store.read(service)).epoch
        await pointer_epoch_reached(f"http://{metrics}/metrics", service, promoted)
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
