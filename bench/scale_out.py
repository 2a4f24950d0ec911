"""Several workers in one consumer group: events/s and CPU per event with 1 and 2 workers on
the same topic, and how long a SIGKILLed worker's partitions go unjudged.

    .venv/bin/python -m bench.scale_out --workers 1,2 --services 100 --events 20000 --kills 3

Throughput: the workers start together on the empty topic (``--partitions``, default 4);
once their group is stable with each holding partitions and a warm-up message of every
partition is judged, the topic is loaded, and the workers are timed from their first
progress committed to the last message committed. CPU per event is the sum of the workers'
CPU time over that stretch divided by the events in it.

Takeover: two workers share the partitions while a producer keeps sending
(``--rate`` messages/s, spread over the services); one is SIGKILLed and the clock runs
until the survivor has judged and checkpointed an event of every partition it took over
(its group's committed offset there moved past the one at the kill). The group being
stable again with one member is reported too: Kafka waits for the dead member's session
to expire (``ROLLGUARD_SESSION_TIMEOUT_S``, 10 s; ``--session-timeout``) before it moves
anything. The committed offset moves at the survivor's next checkpoint (every second here)
and commit (every second): the figure is an upper bound, by up to about 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import statistics
import subprocess
import time
from collections.abc import AsyncIterator

from aiokafka.admin import AIOKafkaAdminClient

from bench.kafka_harness import cpu_seconds, end_offsets, load_topic, prepare, steady_batches
from rollguard.base.config import kafka_bootstrap
from rollguard.streams.app import owner_of
from rollguard.streams.connect import producer
from rollguard.streams.wire import encode_batch
from tests.support.runs import (
    IsolatedRun,
    committed_offsets,
    group_partitions,
    wait_members,
    wait_processed,
)


@contextlib.asynccontextmanager
async def workers(run: IsolatedRun, count: int, **env: str,
                  ) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    started = [run.start_member(f"w{i}", **env) for i in range(count)]
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
        for process in started:
            process.wait(30)


def warm_up(partitions: int) -> list[tuple[bytes, bytes]]:
    """One event for each partition, of a service that partition owns."""
    owner, names = owner_of(partitions), dict[int, str]()
    i = 0
    while len(names) < partitions:
        names.setdefault(owner(f"warm-{i}".encode()), f"warm-{i}")
        i += 1
    return [(name.encode(), encode_batch([{"event_id": "w", "ts": time.time(),
                                           "service": name, "release": "v1",
                                           "metrics": {"error": 0}}]))
            for name in names.values()]


async def timed_throughput(run: IsolatedRun, count: int, messages: list[tuple[bytes, bytes]],
                           batch: int) -> tuple[int, float, float]:
    """Start ``count`` workers on the empty topic, wait until each holds partitions and
    judged a warm-up message on every partition, then load ``messages`` and time them from
    the first progress committed beyond the warm-up to the last: (events, wall s, CPU s of
    all the workers)."""
    topic = run.topic("events")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap())
    await admin.start()
    try:
        async with workers(run, count) as processes:
            await wait_members(run, count, topic)
            await load_topic(topic, warm_up(run.partitions))
            await wait_processed(run, roles=("events",))
            base = await committed_offsets(admin, run.app_id, topic)
            await load_topic(topic, messages)
            ends = await end_offsets(topic, run.partitions)
            first: tuple[float, int, float] | None = None
            while True:
                done = await committed_offsets(admin, run.app_id, topic)
                stamp = time.perf_counter()
                cpu = sum(cpu_seconds(p.pid) for p in processes)
                if first is None and done != base:
                    first = (stamp, sum(done.values()), cpu)
                if first is not None and all(done.get(p, 0) >= e for p, e in ends.items()):
                    events = (sum(ends.values()) - first[1]) * batch
                    return events, stamp - first[0], cpu - first[2]
                if any(p.poll() is not None for p in processes):
                    raise RuntimeError("a worker exited")
                await asyncio.sleep(0.25)
    finally:
        await admin.close()


async def throughput(args: argparse.Namespace, count: int) -> None:
    run = IsolatedRun.new("bench-scale", partitions=args.partitions)
    await prepare(run)
    messages = list(steady_batches(args.services, args.events, args.batch))
    try:
        events, wall, cpu = await timed_throughput(run, count, messages, args.batch)
    finally:
        await run.delete_topics()
    print(f"{count} worker(s), {args.partitions} partitions: {events / wall:,.0f} events/s "
          f"over {events:,} events ({wall:.1f} s); CPU {cpu:.1f} s in all, "
          f"{cpu / events * 1e6:.2f} µs per event")


def interleaved(services: int, events: int, batch: int) -> list[tuple[bytes, bytes]]:
    """Messages of ``batch`` events of every service in turn, time moving forward."""
    by_service = list(steady_batches(services, events, batch))
    per = len(by_service) // services
    return [by_service[s * per + i] for i in range(per) for s in range(services)]


async def keep_sending(run: IsolatedRun, messages: list[tuple[bytes, bytes]],
                       rate: float) -> None:
    """``messages`` at ``rate`` a second, until cancelled (or all sent)."""
    async with producer(linger_ms=5) as out:
        for key, value in messages:
            await out.send(run.topic("events"), value, key=key)
            await asyncio.sleep(1.0 / rate)


async def takeover(args: argparse.Namespace) -> tuple[float, float]:
    """SIGKILL one of two workers: (s until the group is stable again, s until every moved
    partition was judged again)."""
    run = IsolatedRun.new("bench-takeover", partitions=args.partitions)
    await prepare(run)
    topic = run.topic("events")
    traffic = interleaved(args.services, int(args.rate * 150 / args.services) * 10, 10)
    sender = asyncio.create_task(keep_sending(run, traffic, args.rate))
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap())
    await admin.start()
    try:
        timeout = {"ROLLGUARD_SESSION_TIMEOUT_S": str(args.session_timeout)}
        async with workers(run, 2, **timeout) as processes:
            held = await wait_members(run, 2, topic)
            while not all((await committed_offsets(admin, run.app_id, topic)).values()):
                await asyncio.sleep(0.2)  # both judge and commit
            victim = processes[0]
            victim.send_signal(signal.SIGKILL)
            killed = time.perf_counter()
            victim.wait(10)
            at_kill = await committed_offsets(admin, run.app_id, topic)
            stable: float | None = None
            judged: float | None = None
            moved: set[int] = set()
            while stable is None or judged is None:
                now_held = await group_partitions(run, topic)
                if stable is None and now_held is not None and len(now_held) == 1:
                    stable = time.perf_counter() - killed
                    [survivor] = now_held
                    moved = {p for m, parts in held.items() if m != survivor for p in parts}
                if stable is not None:
                    done = await committed_offsets(admin, run.app_id, topic)
                    if all(done.get(p, 0) > at_kill.get(p, 0) for p in moved):
                        judged = time.perf_counter() - killed
                await asyncio.sleep(0.1)
    finally:
        sender.cancel()
        await admin.close()
        await run.delete_topics()
    return stable, judged


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", default="1,2", help="comma-separated group sizes")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--events", type=int, default=10_000, help="per service")
    parser.add_argument("--batch", type=int, default=500, help="events per Kafka message")
    parser.add_argument("--kills", type=int, default=3, help="takeover trials (0: none)")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="messages/s sent during the takeover trials")
    parser.add_argument("--session-timeout", type=float, default=10.0,
                        help="the workers' ROLLGUARD_SESSION_TIMEOUT_S in the takeover trials")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.python_version()}, cores={os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.1f}")
    for count in map(int, args.workers.split(",")):
        await throughput(args, count)
    trials = [await takeover(args) for _ in range(args.kills)]
    for stable, judged in trials:
        print(f"SIGKILL of 1 of 2 workers (session timeout {args.session_timeout:g} s): "
              f"group stable again after {stable:.1f} s, "
              f"every moved partition judged again after {judged:.1f} s")
    if trials:
        print(f"median: stable {statistics.median(s for s, _ in trials):.1f} s, "
              f"judged again {statistics.median(j for _, j in trials):.1f} s")


if __name__ == "__main__":
    asyncio.run(main())
