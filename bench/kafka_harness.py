"""Shared pieces of the Kafka benchmarks: load a topic with events, run a worker, watch lag."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator

from aiokafka import TopicPartition

from rollguard.config import kafka_bootstrap
from streams.connect import ensure_topics, producer
from streams.wire import encode_batch, encode_blocks
from tests.support.runs import IsolatedRun

LAYOUTS = {"blocks": encode_blocks, "objects": encode_batch}
"""How a message's events are laid out: columns (what the emitter sends) or event objects."""


def steady_batches(services: int, events_per_service: int, batch: int, seed: int = 1,
                   start_ts: float = 1_700_000_000.0, layout: str = "blocks",
                   service_rate: float = 10.0) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) messages of healthy traffic: one stable release per service, each
    sending ``service_rate`` events per second of event time."""
    encode = LAYOUTS[layout]
    rng = random.Random(seed)
    for service_index in range(services):
        service = f"svc-{service_index}"
        key = service.encode()
        for first in range(0, events_per_service, batch):
            events = []
            for i in range(first, min(first + batch, events_per_service)):
                events.append({
                    "event_id": f"{service}-{i}", "ts": start_ts + i / service_rate,
                    "service": service, "release": "v1",
                    "metrics": {
                        "hallucination": int(rng.random() < 0.05),
                        "toxicity": rng.random() * 0.2,
                        "accuracy": 0.9 + rng.random() * 0.05,
                        "latency_ms": 400 + rng.expovariate(1 / 200),
                        "cost_usd": 0.002,
                        "error": int(rng.random() < 0.01),
                    },
                })
            yield key, encode(events)


async def load_topic(topic: str, messages: list[tuple[bytes, bytes]],
                     partition_of: Callable[[bytes], int] | None = None) -> None:
    """Produce ``messages``, placed by ``partition_of(key)`` (None: the default partitioner)."""
    async with producer(linger_ms=20, max_request_size=2_000_000,
                        max_batch_size=1_000_000) as out:
        futures = [await out.send(topic, value, key=key,
                                  partition=partition_of(key) if partition_of else None)
                   for key, value in messages]
        await asyncio.gather(*futures)


async def end_offsets(topic: str, partitions: int) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap())
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def prepare(run: IsolatedRun) -> None:
    await ensure_topics(run.settings().topics())
