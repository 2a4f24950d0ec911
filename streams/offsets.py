"""The log start offsets of partitions, asked of the broker when the gap guard
(:mod:`rollguard.streams.gaps`) repeats a seek: a missing offset below its partition's log
start was deleted (retention), a real gap at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from faust.types import TP, ConsumerT

log = logging.getLogger(__name__)
ASK_S = 2.0  # how long the timer that asks may wait for the answer


async def log_starts(consumer: ConsumerT, tps: Collection[TP]) -> dict[TP, int]:
    """The first offset the broker still keeps of each of ``tps``; an empty answer when it
    cannot say now (the guard's retries then decide)."""
    if not tps:
        return {}
    try:
        found = await asyncio.wait_for(consumer.earliest_offsets(*tps), ASK_S)
    except Exception as exc:  # a hint only: a failure must not stop the timer asking
        log.warning("log start offsets of %s not known: %r", sorted(tps), exc)
        return {}
    return {TP(tp.topic, tp.partition): offset for tp, offset in found.items()
            if offset is not None}
