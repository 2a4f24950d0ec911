"""Events/s and CPU per message of the worker on a realistic fleet: many services at modest
rates, batched the way the emitter batches them.

    .venv/bin/python -m bench.fleet_throughput --services 1000 --seconds 60 --linger 0.02,1

Each service sends at its own rate, log-uniform between ``--min-rate`` and ``--max-rate``
events/s (two orders of magnitude by default); a fifth of the services run a candidate on 10 %
of their traffic. Every ``linger`` seconds of event time, each service with events puts one
message on the topic holding them as blocks, exactly as ``rollguard.streams.emitter.Emitter``
does with that linger. The worker then consumes the backlog; its events/s, and CPU per message
and per event, are measured from its first committed offset to the last. Two lingers in one run
give two points (messages, events, CPU) from which the fixed cost of a message and the cost of
an event are solved.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.kafka_harness import end_offsets, prepare, time_consumer
from rollguard.streams.connect import producer
from rollguard.streams.settings import DEFAULT_CHECKPOINT_S, DEFAULT_EVENT_LOOP
from rollguard.streams.wire import encode_blocks
from tests.support.runs import IsolatedRun

START_TS = 1_700_000_000.0


def fleet_rates(services: int, low: float, high: float, seed: int) -> list[float]:
    """Per-service events/s, log-uniform in [low, high]."""
    rng = random.Random(seed)
    return [math.exp(rng.uniform(math.log(low), math.log(high))) for _ in range(services)]


def _event(service: str, index: int, ts: float, release: str, rng: random.Random
           ) -> dict[str, Any]:
    return {"event_id": f"{service}-{index}", "ts": ts, "service": service, "release": release,
            "metrics": {"hallucination": int(rng.random() < 0.03),
                        "toxicity": rng.random() * 0.2,
                        "accuracy": int(rng.random() < 0.9),
                        "latency_ms": 400 + rng.expovariate(1 / 200),
                        "cost_usd": 0.002 + rng.random() * 0.001,
                        "error": int(rng.random() < 0.01),
                        "complaint": int(rng.random() < 0.005)}}


def fleet_messages(rates: list[float], seconds: float, linger: float, seed: int,
                   batch_events: int = 500) -> Iterator[tuple[bytes, bytes, int]]:
    """``(key, value, events)`` in time order: per linger window, one message per service
    that had events in it (split at ``batch_events``, as the emitter does)."""
    rng = random.Random(seed)
    # Poisson arrivals per service, generated window by window.
    next_at = [START_TS + rng.expovariate(rate) for rate in rates]
    counts = [0] * len(rates)
    window_end = START_TS + linger
    while window_end <= START_TS + seconds + 1e-9:
        window: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for i, rate in enumerate(rates):
            service = f"fleet-{i}"
            while next_at[i] < window_end:
                release = "v2" if i % 5 == 0 and rng.random() < 0.1 else "v1"
                window[i].append(_event(service, counts[i], next_at[i], release, rng))
                counts[i] += 1
                next_at[i] += rng.expovariate(rate)
        for i, events in window.items():
            key = f"fleet-{i}".encode()
            for first in range(0, len(events), batch_events):
                chunk = events[first:first + batch_events]
                yield key, encode_blocks(chunk), len(chunk)
        window_end += linger


@dataclass
class Loaded:
    """Where each message landed: events per (partition, offset)."""

    events: dict[int, dict[int, int]]

    def between(self, start: dict[int, int], end: dict[int, int]) -> tuple[int, int]:
        """Messages and events at offsets ``start[p] <= o < end[p]``."""
        messages = events = 0
        for partition, by_offset in self.events.items():
            lo, hi = start.get(partition, 0), end.get(partition, 0)
            for offset, count in by_offset.items():
                if lo <= offset < hi:
                    messages += 1
                    events += count
        return messages, events


async def load(topic: str, messages: Iterator[tuple[bytes, bytes, int]]) -> Loaded:
    loaded: dict[int, dict[int, int]] = defaultdict(dict)
    async with producer(linger_ms=20, max_request_size=2_000_000,
                        max_batch_size=1_000_000) as out:
        pending = []
        for key, value, count in messages:
            pending.append((await out.send(topic, value, key=key), count))
        for future, count in pending:
            meta = await future
            loaded[meta.partition][meta.offset] = count
    return Loaded(dict(loaded))


def start_floor(run: IsolatedRun, group: str, **extra: str) -> subprocess.Popen[bytes]:
    """A bare Faust agent on the run's events topic, in its own consumer group."""
    return subprocess.Popen([sys.executable, "-m", "bench.faust_floor"],
                            env=run.env(ROLLGUARD_APP_ID=group, **extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def consume(loaded: Loaded, ends: dict[int, int], group: str, topic: str,
                  process: subprocess.Popen[bytes]) -> tuple[int, int, float, float]:
    """Messages, events, wall and CPU seconds of ``process`` on the backlog, from its first
    committed progress (in consumer group ``group``) to the end."""
    timed = await time_consumer(process, group, topic, ends)
    messages, events = loaded.between(timed.first, ends)
    return messages, events, timed.wall, timed.cpu


async def measure(args: argparse.Namespace, linger: float, loop: str
                  ) -> tuple[int, int, float]:
    run = IsolatedRun.new("bench-fleet")
    await prepare(run)
    rates = fleet_rates(args.services, args.min_rate, args.max_rate, args.seed)
    topic = run.topic("events")
    try:
        loaded = await load(topic, fleet_messages(rates, args.seconds, linger, args.seed))
        ends = await end_offsets(topic, run.partitions)
        floor_group = f"{run.app_id}-floor"
        # The deployment's checkpoint interval, not the tests' 1 s: a checkpoint encodes
        # every service that changed since the last, so its cost per message scales with it.
        settings = {"ROLLGUARD_EVENT_LOOP": loop, "ROLLGUARD_CHECKPOINT_S": str(args.checkpoint_s)}
        floor = await consume(loaded, ends, floor_group, topic,
                              start_floor(run, floor_group, **settings))
        messages, events, wall, cpu = await consume(loaded, ends, run.app_id, topic,
                                                    run.start_worker(None, **settings))
    finally:
        await run.delete_topics()
    print(f"== event loop {loop}, checkpoint every {args.checkpoint_s:g} s")
    print(f"bare Faust agent (read, ack): {floor[1] / floor[2]:,.0f} events/s, "
          f"{floor[3] / floor[0] * 1e6:,.0f} µs of CPU per message")
    print(f"-- linger {linger:g} s: {args.services} services, {sum(rates):,.0f} events/s of "
          f"event time in all; {events / messages:.1f} events per message")
    print(f"worker: {events / wall:,.0f} events/s, {messages / wall:,.0f} messages/s "
          f"(over {events:,} events, {messages:,} messages, {wall:.1f} s)")
    if cpu:
        print(f"worker CPU: {cpu / messages * 1e6:,.0f} µs per message, "
              f"{cpu / events * 1e6:.1f} µs per event")
    return messages, events, cpu


def solve(points: list[tuple[int, int, float]]) -> tuple[float, float] | None:
    """Fixed µs per message and µs per event from two (messages, events, cpu) points."""
    (m1, e1, c1), (m2, e2, c2) = points[:2]
    det = m1 * e2 - m2 * e1
    if det == 0:
        return None
    per_message = (c1 * e2 - c2 * e1) / det
    per_event = (m1 * c2 - m2 * c1) / det
    return per_message * 1e6, per_event * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="of event time")
    parser.add_argument("--min-rate", type=float, default=0.5)
    parser.add_argument("--max-rate", type=float, default=50.0)
    parser.add_argument("--linger", default="0.02",
                        help="comma-separated emitter lingers in seconds, one run each")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--checkpoint-s", type=float, default=DEFAULT_CHECKPOINT_S)
    parser.add_argument("--event-loop", default=DEFAULT_EVENT_LOOP,
                        help="comma-separated event loops (uvloop, asyncio), one run each")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.python_version()}, cores={os.cpu_count()}")
    for loop in args.event_loop.split(","):
        points = [await measure(args, float(linger), loop) for linger in args.linger.split(",")]
        _fit(points)


def _fit(points: list[tuple[int, int, float]]) -> None:
    if len(points) >= 2 and all(cpu for *_, cpu in points):
        fitted = solve(points)
        if fitted is not None:
            print(f"fitted: {fitted[0]:,.0f} µs of CPU per message + {fitted[1]:.1f} µs per event")


if __name__ == "__main__":
    asyncio.run(main())
