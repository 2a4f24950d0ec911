"""Decision-to-switch latency: from producing the event that tips a rollback decision to a
subscribed reader's callback seeing the new release. Real Kafka, Redis and worker.

    .venv/bin/python -m bench.decision_latency --trials 30

For each trial a new service gets a canary that regresses. The pure core, run on the same
events with the same roles, says which event tips the decision; everything before it is sent
and processed first, then the tipping event is sent alone and the clock runs until the
reader (in this process) is called with the candidate gone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import orjson

from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import PointerStore
from rollguard.actions.reader import PointerReader
from rollguard.actions.state import PointerState
from rollguard.demo.run import prepare_service, promote
from rollguard.demo.scenario import Scenario, canary_events
from rollguard.detectors.events import validate_event
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.policy import default_policy
from rollguard.streams.connect import ensure_topics, producer
from tests.support.runs import IsolatedRun, wait_processed

SCENARIO = Scenario(rate=10.0, blip_s=0.0, duration=1200.0)


def tipping_index(service: str, events: list[dict[str, object]]) -> int:
    """Index of the event on which the core decides to roll back."""
    monitor = ServiceMonitor(service, default_policy())
    monitor.set_roles("v1", "v2")
    for i, raw in enumerate(events):
        if any(d.action == "rollback" for d in monitor.observe(validate_event(raw))):
            return i
    raise RuntimeError("the scenario never tips a rollback")


async def one_trial(run: IsolatedRun, store: PointerStore, seed: int) -> float:
    service = f"lat-{uuid.uuid4().hex[:8]}"
    secret = run.secret.encode()
    await prepare_service(store, service, secret)
    await promote(store, service, "v2", SCENARIO.canary_percent, secret)
    events = canary_events(service, SCENARIO, seed)
    k = tipping_index(service, events)
    topic = run.topic("events")
    switched: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def on_change(state: PointerState) -> None:
        if state.candidate is None and not switched.done():
            switched.set_result(time.perf_counter())

    reader = PointerReader(store.client, service, on_change=on_change)
    await reader.start()
    try:
        async with producer(linger_ms=5, max_request_size=2_000_000) as out:
            for i in range(0, k, 500):
                await out.send(topic, orjson.dumps(events[i : min(i + 500, k)]),
                               key=service.encode())
            await out.flush()
            await wait_processed(run)
            start = time.perf_counter()
            await out.send_and_wait(topic, orjson.dumps(events[k]), key=service.encode())
            return await asyncio.wait_for(switched, 30) - start
    finally:
        await reader.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    run = IsolatedRun.new("bench-latency", partitions=2)
    await ensure_topics(run.settings().topics())
    client = async_redis_client()
    store = PointerStore(client, run.secret.encode())
    worker = run.start_worker()
    latencies = []
    try:
        for seed in range(args.trials):
            latencies.append(await one_trial(run, store, seed))
    finally:
        worker.terminate()
        worker.wait(30)
        await client.aclose()
        await run.delete_topics()
    ms = [x * 1000 for x in latencies]
    print(f"trials: {len(ms)}; decision-to-switch latency: p50 {percentile(ms, 0.5):.0f} ms, "
          f"p99 {percentile(ms, 0.99):.0f} ms, max {max(ms):.0f} ms, "
          f"mean {statistics.mean(ms):.0f} ms")
    print("each trial, in order (ms):", " ".join(f"{x:.0f}" for x in ms))


if __name__ == "__main__":
    asyncio.run(main())
