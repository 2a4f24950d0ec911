"""The worker's /metrics on the real broker and Redis: a regression rolled back and invalid
events show in the counters and the decision-to-flip histogram a scrape returns; the worker
then answers its liveness and readiness probes."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest

from tests.support.e2e import (
    REGRESSION,
    Samples,
    new_service,
    produce,
    scenario_events,
    scrape,
    setup_service,
    stop,
    value,
)
from tests.support.ports import free_port
from tests.support.runs import IsolatedRun

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

async def probe(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


async def test_metrics_count_events_rejections_the_rollback_and_time_its_flip() -> None:
    run = IsolatedRun.new("e2e-metrics", partitions=2)
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    events = scenario_events(service, REGRESSION)
    bad = [(service.encode(), b"{not json")] * 3 + [
        (service.encode(), orjson.dumps({"event_id": "y", "ts": 1.0, "service": service,
                                         "release": "v2", "metrics": {"toxicity": 7}}))] * 2
    url = f"http://127.0.0.1:{free_port()}/metrics"
    worker = run.start_worker(ROLLGUARD_METRICS_ADDR=url.split("/")[2])
    try:
        await produce(run, events, raw_lines=bad)
        deadline = time.monotonic() + 120
        samples: Samples = {}
        while time.monotonic() < deadline:
            samples = await scrape(url)
            if (value(samples, "rollguard_commands_total", outcome="applied") >= 1
                    and value(samples, "rollguard_events_total", outcome="counted") >= len(events)
                    and value(samples, "rollguard_events_total", outcome="rejected") >= len(bad)):
                break
            await asyncio.sleep(0.5)
        else:
            raise TimeoutError(f"/metrics never showed the rollback: {sorted(samples)[:20]}")
        # it has worked for a while: joined its group and reached Redis
        probes = [await probe(url.replace("/metrics", path)) for path in ("/healthz", "/readyz")]
    finally:
        stop(worker)
        await store.client.aclose()
        await run.delete_topics()
    assert probes == [(200, "ok\n"), (200, "ready\n")]
    assert value(samples, "rollguard_events_total", outcome="counted") == len(events)
    assert value(samples, "rollguard_events_rejected_total", reason="not_json") == 3
    assert value(samples, "rollguard_events_rejected_total", reason="metric_out_of_range") == 2
    assert value(samples, "rollguard_decisions_total", service=service, verdict="sustained",
                 action="rollback") == 1
    assert value(samples, "rollguard_commands_total", outcome="applied") == 1
    assert value(samples, "rollguard_decision_to_flip_seconds_count", approval="none") == 1
    assert 0 < value(samples, "rollguard_decision_to_flip_seconds_sum", approval="none") < 60
    lags = named(samples, "rollguard_partition_lag_messages")  # the service's partition
    assert len(lags) == 1 and all(lag >= 0 for lag in lags.values())
    assert set(named(samples, "rollguard_checkpoint_age_seconds")) == set(lags)
    assert value(samples, "rollguard_event_time_lag_seconds", service=service) > 0
    baseline = {"service": service, "release": "v1", "role": "baseline", "metric": "error"}
    assert (("rollguard_metric_value", frozenset(baseline.items())) in samples)
    assert value(samples, "rollguard_metric_tolerance", service=service, metric="error") > 0
