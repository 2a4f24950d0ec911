"""Shared pieces of the Kafka benchmarks: load a topic with events, run a worker, watch lag."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from rollguard.base.config import kafka_bootstrap
from rollguard.streams.connect import ensure_topics, producer
from rollguard.streams.wire import encode_batch, encode_blocks
from tests.support.runs import IsolatedRun, committed_offsets

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
                     partition_of: Callable[[bytes], int] | None = None,
                     compression: str | None = None) -> None:
    """Produce ``messages``, placed by ``partition_of(key)`` (None: the default partitioner),
    in record batches compressed with ``compression`` (gzip, snappy, lz4, zstd; None: none)."""
    async with producer(linger_ms=20, max_request_size=2_000_000, max_batch_size=1_000_000,
                        compression_type=compression) as out:
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), 0.0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _consumed(admin: AIOKafkaAdminClient, group: str,
                    totals: dict[str, int | None], partitions: int) -> bool:
    """Whether ``group`` committed ``total`` messages of each topic (``None``: up to the
    end offsets of its ``partitions`` now, for a topic the worker writes before it commits
    the main topic's end)."""
    for topic, total in totals.items():
        committed = await committed_offsets(admin, group, topic)
        if total is None:
            ends = await end_offsets(topic, partitions)
            if any(committed.get(p, 0) < end for p, end in ends.items()):
                return False
        elif sum(committed.values()) < total:
            return False
    return True


@dataclass(frozen=True)
class Timed:
    """A consumer timed from its first committed progress to the end of the topic."""

    first: dict[int, int]  # the offsets committed when timing started, by partition
    wall: float
    cpu: float  # the process's CPU seconds over the same stretch


async def time_consumer(process: subprocess.Popen[bytes], group: str, topic: str,
                        ends: dict[int, int], also: dict[str, int | None] | None = None,
                        timeout: float = 900.0) -> Timed:
    """Watch ``group`` (run by ``process``) consume ``topic`` up to ``ends`` (and each topic
    in ``also`` up to that many messages in all); the process is stopped afterwards. On a
    shared machine CPU is the steadier figure: wall time includes waiting for a core."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap())
    await admin.start()
    try:
        first: tuple[float, dict[int, int], float] | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = await committed_offsets(admin, group, topic)
            stamp, cpu = time.perf_counter(), cpu_seconds(process.pid)
            if first is None and any(done.values()):
                first = (stamp, done, cpu)
            if (first is not None and all(done.get(p, 0) >= end for p, end in ends.items())
                    and await _consumed(admin, group, also or {}, len(ends))):
                return Timed(first[1], stamp - first[0], cpu - first[2])
            if process.poll() is not None:
                raise RuntimeError(f"{group} exited with {process.returncode}")
            await asyncio.sleep(0.25)
        raise TimeoutError(f"{group} did not finish {topic}")
    finally:
        await admin.close()
        process.terminate()
        process.wait(30)
