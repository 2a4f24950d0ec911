"""Offsets of the partitions the worker reads: their log start, asked of the broker when the
gap guard (:mod:`rollguard.streams.gaps`) repeats a seek (a missing offset below its
partition's log start was deleted by retention: a real gap at once), and the seek itself."""

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


async def seek(consumer: ConsumerT, tp: TP, offset: int) -> None:
    """Seek ``tp`` to ``offset`` in the Kafka consumer's own thread.

    Why not ``consumer.seek``: Faust's calls aiokafka's ``seek`` from the event loop's thread
    while the consumer's thread may be iterating the records it fetched; aiokafka then fails
    with a KeyError in ``fetched_records``, and Faust's fetcher stops for good (seen: a
    worker reading nothing more after the gap guard sought back, until it was killed).
    ``seek_wait`` runs the seek in that thread, between fetches, and sets Faust's read
    offset as ``seek`` does."""
    await consumer.seek_wait({tp: offset})
    if not offset:  # seek_wait leaves the read offset of 0 alone; seek clears it
        read = getattr(consumer, "_read_offset", None)
        if read is not None:
            read[tp] = None
