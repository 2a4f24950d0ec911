"""Flip-to-visible latency: from issuing a flip to every subscribed reader's on_change callback.

Run: ``.venv/bin/python -m bench.flip_latency --readers 1 100 500 --processes 2``.

How: ``--processes`` worker processes each run an asyncio loop with their share of the
readers (each reader has its own pub/sub connection, as a separate server would). The parent
waits until every reader has loaded the pointer, then issues ``--flips`` promotes in turn
(signed commands through ``PointerStore.execute``: plan, Lua script, publish), ``--gap-ms``
apart. t0 is taken just before ``execute`` is called; each callback records
``time.monotonic()`` (one system-wide clock on Linux). Reported over all (flip, reader)
pairs, plus the slowest reader per flip, plus the CPU the reader processes spent per reader
and flip (idle loop included): with every reader on one small machine, latency at 500 readers
is bounded by that CPU work queued on the cores, not by Redis.

Readers in one process share the decode of a pointer value
(``rollguard.actions.reader_core.decoded``);
500 separate servers would each decode it once. ``--unshared-decode`` turns the sharing off in
the worker processes, to show what the same packing costs when every reader decodes.

The readers run with the library's default periodic re-read (5 s, ``--refresh-s``), as servers
do. ``--gc-freeze`` makes the workers call ``gc.freeze()`` once their readers started, which
``actions/reader.py`` recommends to servers with many readers; it is off by default.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import statistics
import time
import uuid
from array import array
from typing import Any

import redis.asyncio as aioredis

from rollguard.actions import reader_core
from rollguard.actions.commands import new_command, sign
from rollguard.actions.connect import async_redis_client
from rollguard.actions.keys import ServiceKeys
from rollguard.actions.pointer import PointerStore
from rollguard.actions.reader import PointerReader
from rollguard.actions.routing import Router
from rollguard.actions.state import PointerState, decode

SECRET = b"bench-secret"


def unshared(raw: bytes | str) -> tuple[PointerState, Router]:
    state = decode(raw)
    return state, Router(state)


def worker(
    service: str, readers: int, ready: Any, done: Any, results: Any, share: bool = True,
    refresh_s: float = 5.0, freeze: bool = False,
) -> None:
    if not share:
        reader_core.decoded = unshared
    asyncio.run(_worker(service, readers, ready, done, results, refresh_s, freeze))


async def _worker(
    service: str, readers: int, ready: Any, done: Any, results: Any, refresh_s: float,
    freeze: bool,
) -> None:
    # Two flat arrays, not a list of tuples: up to 75,000 tuples kept alive for the run are
    # garbage-collector work (full collections of the workers took 20-90 ms mid-flip) that
    # the benchmark would add itself and a serving process does not have.
    epochs, times = array("q"), array("d")

    def on_change(state: PointerState) -> None:
        epochs.append(state.epoch)
        times.append(time.monotonic())

    client = async_redis_client()
    assert isinstance(client, aioredis.Redis), "the flip-latency bench runs on one server"
    client.connection_pool.max_connections = readers + 8
    started = []
    for _ in range(readers):
        reader = PointerReader(client, service, on_change=on_change, refresh_interval_s=refresh_s)
        await reader.start()
        started.append(reader)
    del epochs[:], times[:]  # the initial loads are not flips
    if freeze:  # what docs/pointer-protocol.md recommends to servers after startup
        gc.collect()
        gc.freeze()
    ready.release()
    cpu_start = time.process_time()
    while not done.is_set():
        await asyncio.sleep(0.05)
    cpu = time.process_time() - cpu_start
    for reader in started:
        await reader.stop()
    await client.aclose()
    results.put((list(zip(epochs, times, strict=True)), cpu))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def run(
    readers: int, processes: int, flips: int, gap_s: float, share: bool = True,
    refresh_s: float = 5.0, freeze: bool = False,
) -> dict[str, float]:
    service = f"bench-flip-{uuid.uuid4().hex[:8]}"
    client = async_redis_client()
    store = PointerStore(client, SECRET)
    await store.register_release(service, "v1", {"model": "m1", "prompt": "p1", "index": "i1"})
    await store.register_release(service, "v2", {"model": "m2", "prompt": "p2", "index": "i2"})

    async def flip(release: str) -> float:
        now = time.time()
        command = sign(new_command(service, "promote", "bench", now, release=release), SECRET)
        t0 = time.monotonic()
        (await store.execute(command, now)).raise_for_status()
        return t0

    await flip("v1")
    ctx = mp.get_context("spawn")
    processes = min(processes, readers)
    ready, done, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    shares = [readers // processes + (i < readers % processes) for i in range(processes)]
    procs = [
        ctx.Process(
            target=worker, args=(service, n, ready, done, results, share, refresh_s, freeze)
        )
        for n in shares
    ]
    for p in procs:
        p.start()
    for _ in procs:
        await asyncio.to_thread(ready.acquire)
    await asyncio.sleep(0.5)  # let subscriptions settle before the first flip
    issued: dict[int, float] = {}
    for i in range(flips):
        issued[2 + i] = await flip("v2" if i % 2 == 0 else "v1")
        await asyncio.sleep(gap_s)
    done.set()
    reports = [await asyncio.to_thread(results.get) for _ in procs]
    seen = [pair for pairs, _ in reports for pair in pairs]
    cpu_s = sum(cpu for _, cpu in reports)
    for p in procs:
        p.join()
    keys = [k async for k in client.scan_iter(match=ServiceKeys.of(service).pattern)]
    await client.delete(*keys)
    await client.aclose()
    latencies = [(t - issued[e]) * 1000 for e, t in seen if e in issued]
    per_flip: dict[int, list[float]] = {}
    for e, t in seen:
        per_flip.setdefault(e, []).append((t - issued[e]) * 1000)
    missing = flips * readers - len(latencies)
    slowest = [max(v) for v in per_flip.values()]
    return {
        "readers": readers, "processes": processes, "flips": flips,
        "p50": statistics.median(latencies), "p99": percentile(latencies, 99),
        "max": max(latencies), "slowest_reader_p50": statistics.median(slowest),
        "slowest_reader_p99": percentile(slowest, 99), "missing": missing,
        "cpu_us": cpu_s / (flips * readers) * 1e6,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, nargs="+", default=[1, 100, 500])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--flips", type=int, default=100)
    parser.add_argument("--gap-ms", type=float, default=100.0)
    parser.add_argument("--unshared-decode", action="store_true",
                        help="every reader decodes each value itself (as separate servers do)")
    parser.add_argument("--refresh-s", type=float, default=5.0,
                        help="the readers' periodic re-read interval (the library default: 5 s)")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() in the worker processes once their readers started")
    args = parser.parse_args()
    print("| readers | processes | flips | p50 ms | p99 ms | max ms "
          "| slowest reader per flip p50 / p99 ms | missed | reader CPU per flip µs |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in args.readers:
        r = asyncio.run(
            run(n, args.processes, args.flips, args.gap_ms / 1000, not args.unshared_decode,
                args.refresh_s, args.gc_freeze)
        )
        print(f"| {n} | {r['processes']} | {r['flips']} | {r['p50']:.2f} | {r['p99']:.2f} "
              f"| {r['max']:.2f} | {r['slowest_reader_p50']:.2f} / {r['slowest_reader_p99']:.2f} "
              f"| {r['missing']} | {r['cpu_us']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
