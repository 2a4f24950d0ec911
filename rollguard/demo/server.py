"""A stand-in serving process: it follows the version pointer and prints every switch.

Each line on stdout is JSON: ``{"wall": unix seconds, "epoch": n, "active": ..., "candidate":
..., "percent": ...}`` — the demo reads these to show when servers switched.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson

from rollguard.actions.pointer import PointerState
from rollguard.actions.reader import PointerReader


def describe(state: PointerState) -> dict[str, object]:
    return {"wall": time.time(), "epoch": state.epoch, "active": state.active,
            "candidate": state.candidate, "percent": state.percent,
            "model": state.active_components.get("model")}


async def serve(service: str, redis_url: str, lifetime_s: float = 3600.0) -> None:
    def announce(state: PointerState) -> None:
        sys.stdout.write(orjson.dumps(describe(state)).decode() + "\n")
        sys.stdout.flush()

    reader = PointerReader(redis_url, service, on_change=announce)
    await reader.start()
    if reader.state is not None:
        announce(reader.state)
    try:
        await asyncio.sleep(lifetime_s)
    finally:
        await reader.stop()
