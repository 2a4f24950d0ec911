"""Events/s of the Faust worker end to end (decode, validate, detectors, state to the table),
against raw aiokafka consumption of the same messages on the same broker in the same run.

    .venv/bin/python -m bench.worker_throughput --services 100 --events 10000 --batch 500

``--layout blocks,objects`` runs the same traffic once as blocks (columns, what the emitter
sends) and once as arrays of event objects, each against its own raw ceiling.
``--partitioner crc32`` places messages as librdkafka clients (kcat) do, ``elsewhere`` on a
partition that never owns the key: those messages take the hop through the by-service topic
(streams/partition.py); ``murmur2`` (the default) puts every message on its owner's partition.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
import zlib
from collections.abc import Callable

import orjson
from aiokafka import AIOKafkaConsumer

from bench.kafka_harness import (
    LAYOUTS,
    end_offsets,
    load_topic,
    prepare,
    steady_batches,
    time_consumer,
)
from rollguard.base.config import kafka_bootstrap
from rollguard.streams.app import owner_of
from tests.support.runs import IsolatedRun


async def raw_consume(topic: str, total_messages: int) -> tuple[int, float]:
    """aiokafka getmany + orjson decode of every event: the ceiling for one process."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap(),
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None, max_partition_fetch_bytes=8_000_000,
                                fetch_max_bytes=64_000_000)
    await consumer.start()
    try:
        seen = events = 0
        start = None
        while seen < total_messages:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if start is None and batches:
                start = time.perf_counter()
            for messages in batches.values():
                for message in messages:
                    for item in orjson.loads(message.value):
                        ids = item["event_id"]
                        events += len(ids) if type(ids) is list else 1
                    seen += 1
        assert start is not None
        return events, time.perf_counter() - start
    finally:
        await consumer.stop()


def placement(name: str, partitions: int) -> Callable[[bytes], int] | None:
    """Where a producer puts a key: Kafka's default (None), librdkafka's or never its owner."""
    owner = owner_of(partitions)
    return {"murmur2": None,
            "crc32": lambda key: zlib.crc32(key) % partitions,
            "elsewhere": lambda key: (owner(key) + 1) % partitions}[name]


async def worker_consume(run: IsolatedRun, ends: dict[int, int], batch: int, forwarded: int = 0,
                         ) -> tuple[int, float, float]:
    """Start a worker, time it from its first committed progress to the last message (and
    the ``forwarded`` messages it hops through the by-service topic): events, wall seconds
    and the worker's CPU seconds over the same stretch."""
    hops: dict[str, int | None] = {run.settings().topic_by_service: forwarded} if forwarded else {}
    timed = await time_consumer(run.start_worker(), run.app_id, run.topic("events"), ends,
                                also=hops)
    done = sum(ends.values()) - sum(timed.first.get(p, 0) for p in ends)
    return done * batch, timed.wall, timed.cpu


async def measure(args: argparse.Namespace, layout: str) -> None:
    run = IsolatedRun.new("bench-tput")
    await prepare(run)
    messages = list(steady_batches(args.services, args.events, args.batch, layout=layout,
                                   service_rate=args.service_rate))
    topic = run.topic("events")
    place = placement(args.partitioner, run.partitions)
    await load_topic(topic, messages, place, args.compression)
    ends = await end_offsets(topic, run.partitions)
    total = sum(ends.values())
    owner = owner_of(run.partitions)
    hops = sum(1 for key, _ in messages if place and place(key) != owner(key))
    try:
        raw_events, raw_s = await raw_consume(topic, total)
        worker_events, worker_s, worker_cpu = await worker_consume(run, ends, args.batch, hops)
    finally:
        await run.delete_topics()
    raw_rate, worker_rate = raw_events / raw_s, worker_events / worker_s
    size = sum(len(value) for _, value in messages) / (args.services * args.events)
    print(f"-- layout {layout}: {total} messages of {args.batch} events "
          f"({args.services} services at {args.service_rate:g} events/s of event time), "
          f"{size:.0f} bytes per event; partitioner {args.partitioner}: "
          f"{hops} messages forwarded")
    print(f"raw aiokafka getmany + orjson: {raw_rate:,.0f} events/s")
    print(f"rollguard worker end to end:   {worker_rate:,.0f} events/s "
          f"(measured over {worker_events:,} events)")
    print(f"ratio worker / raw:            {worker_rate / raw_rate:.2f}")
    if worker_cpu:
        print(f"worker CPU per event:          {worker_cpu / worker_events * 1e6:.2f} µs "
              f"({worker_events / worker_cpu:,.0f} events per CPU second)")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--events", type=int, default=10_000, help="per service")
    parser.add_argument("--batch", type=int, default=500, help="events per Kafka message")
    parser.add_argument("--service-rate", type=float, default=10.0,
                        help="events per second of event time per service: 10 closes a bucket "
                        "every 100 events (many quiet services), 1000 every 10,000")
    parser.add_argument("--compression", default=None,
                        choices=["gzip", "snappy", "lz4", "zstd"],
                        help="record batches compressed as a producer such as kcat does")
    parser.add_argument("--partitioner", default="murmur2",
                        choices=("murmur2", "crc32", "elsewhere"))
    parser.add_argument("--layout", default="blocks",
                        help=f"comma-separated, of: {', '.join(LAYOUTS)}")
    args = parser.parse_args()
    layouts = args.layout.split(",")
    unknown = set(layouts) - set(LAYOUTS)
    if unknown:
        parser.error(f"unknown layout {', '.join(sorted(unknown))}; known: {', '.join(LAYOUTS)}")
    print(f"machine: {platform.machine()}, {platform.python_version()}, cores={os.cpu_count()}")
    for layout in layouts:
        await measure(args, layout)


if __name__ == "__main__":
    asyncio.run(main())
