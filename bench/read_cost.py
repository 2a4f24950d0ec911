"""Cost of the per-request ``resolve()`` of a running PointerReader (no network I/O).

Run: ``.venv/bin/python -m bench.read_cost`` (needs the Redis server of ``scripts/services``).
Three cases: no staged rollout (one answer), a staged candidate at 30% (hash path), a cohort
hit. Reported per call, with the cost of an empty Python loop over the same keys subtracted
and also shown.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from rollguard.actions.commands import new_command, sign
from rollguard.actions.connect import async_redis_client
from rollguard.actions.keys import ServiceKeys
from rollguard.actions.pointer import PointerStore
from rollguard.actions.reader import PointerReader

SECRET = b"bench-secret"


def per_call_ns(fn, keys: list[str], repeats: int, cohort: str | None = None) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        if cohort is None:
            for k in keys:
                fn(k)
        else:
            for k in keys:
                fn(k, cohort)
        best = min(best, (time.perf_counter_ns() - start) / len(keys))
    return best


def empty_loop_ns(keys: list[str], repeats: int) -> float:
    def nothing(k: str, cohort: str | None = None) -> None:
        return None

    return per_call_ns(nothing, keys, repeats)


async def main(n: int, repeats: int) -> None:
    service = f"bench-read-{uuid.uuid4().hex[:8]}"
    client = async_redis_client()
    store = PointerStore(client, SECRET)
    await store.register_release(service, "v1", {"model": "m1", "prompt": "p1"})
    await store.register_release(service, "v2", {"model": "m2", "prompt": "p2"})

    async def flip(**fields: object) -> None:
        now = time.time()
        command = sign(new_command(service, "promote", "bench", now, **fields), SECRET)  # type: ignore[arg-type]
        (await store.execute(command, now)).raise_for_status()

    await flip(release="v1")
    keys = [f"user-{uuid.uuid4().hex[:12]}" for _ in range(n)]
    baseline = empty_loop_ns(keys, repeats)
    rows = []
    async with PointerReader(client, service, refresh_interval_s=3600) as reader:
        rows.append(("active only (no candidate)", per_call_ns(reader.resolve, keys, repeats)))
        changed = asyncio.Event()
        reader.on_change = lambda state: changed.set()
        await flip(release="v2", percent=30.0, cohorts=("beta",))
        await asyncio.wait_for(changed.wait(), 5)
        rows.append(("candidate at 30% (hash)", per_call_ns(reader.resolve, keys, repeats)))
        rows.append(("cohort hit", per_call_ns(reader.resolve, keys, repeats, cohort="beta")))
    keys_to_delete = [k async for k in client.scan_iter(match=ServiceKeys.of(service).pattern)]
    await client.delete(*keys_to_delete)
    await client.aclose()
    print(f"resolve() per call, best of {repeats} x {n} keys; empty loop {baseline:.0f} ns")
    print("| case | ns per call | minus empty loop |")
    print("| --- | ---: | ---: |")
    for name, ns in rows:
        print(f"| {name} | {ns:.0f} | {ns - baseline:.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.keys, args.repeats))
