"""The emitter batches events into Kafka without blocking, drops (and counts) when full."""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest

from rollguard.detectors.blocks import Block, block_events, is_block
from rollguard.detectors.events import Event, validate_event
from rollguard.streams.connect import consumer, ensure_topics
from rollguard.streams.emitter import BackgroundEmitter, Emitter
from rollguard.streams.wire import read_message

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]


async def read_events(topic: str, count: int, timeout: float = 30) -> list[tuple[bytes, Event]]:
    """The events on a topic as the worker reads them; every message must be all blocks."""
    found: list[tuple[bytes, Event]] = []
    async with consumer(topic, auto_offset_reset="earliest", group_id=None) as into:
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            for messages in (await into.getmany(timeout_ms=500)).values():
                for message in messages:
                    assert all(is_block(item) for item in orjson.loads(message.value))
                    for item, raw, error in read_message(message.value):
                        assert isinstance(item, Block), error
                        found.extend((message.key, validate_event(e)) for e in block_events(raw))
    return found


async def test_emitted_events_arrive_batched_and_keyed_by_service() -> None:
    """Every event arrives once, in batches keyed by its service."""
    topic = f"test-emit-{uuid.uuid4().hex[:8]}"
    await ensure_topics({topic: 2})
    emitter = Emitter(topic, batch_events=50)
    await emitter.start()
    for i in range(300):
        emitter.emit(f"svc-{i % 3}", "v1", {"error": i % 2}, ts=1000.0 + i)
    await emitter.close()
    events = await read_events(topic, 300)
    assert len(events) == 300 and emitter.sent == 300 and emitter.dropped == 0
    assert all(key == event.service.encode() for key, event in events)
    assert len({event.event_id for _, event in events}) == 300
    assert sorted(event.ts for _, event in events) == [1000.0 + i for i in range(300)]
    assert all(event.metrics == {"error": float(event.ts % 2)} for _, event in events)


async def test_full_buffer_drops_and_counts_instead_of_blocking() -> None:
    """Past max_buffer, emit returns False at once and the drop is counted."""
    topic = f"test-emit-{uuid.uuid4().hex[:8]}"
    await ensure_topics({topic: 1})
    emitter = Emitter(topic, max_buffer=10, linger_s=60)
    await emitter.start()
    start = time.perf_counter()
    accepted = [emitter.emit("svc", "v1", {"error": 0}) for _ in range(25)]
    elapsed = time.perf_counter() - start
    await emitter.close()
    assert accepted.count(True) == 10 and emitter.dropped == 15
    assert elapsed < 0.05
    assert len(await read_events(topic, 10)) == 10


def test_background_emitter_serves_threaded_code() -> None:
    """A non-asyncio server emits from its own thread; close() flushes everything."""
    topic = f"test-emit-{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics({topic: 1}))
    emitter = BackgroundEmitter(topic)
    emitter.start()
    for i in range(100):
        emitter.emit("svc", "v1", {"latency_ms": float(i)})
    emitter.close()
    assert emitter.emitter.sent == 100
    assert len(asyncio.run(read_events(topic, 100))) == 100


async def test_leaving_async_with_flushes_and_closes_the_emitter() -> None:
    """Events emitted inside ``async with Emitter()`` are on the topic once the block is left,
    with no flush or close of the caller's, and the Kafka producer is stopped."""
    topic = f"test-emit-{uuid.uuid4().hex[:8]}"
    await ensure_topics({topic: 1})
    async with Emitter(topic, linger_s=60) as emitter:  # the sender never wakes by itself
        for i in range(20):
            emitter.emit("svc", "v1", {"error": i % 2})
        assert emitter.sent == 0
    assert emitter.sent == 20 and emitter._producer is None
    assert len(await read_events(topic, 20)) == 20


def test_leaving_with_flushes_the_background_emitter_and_ends_its_thread() -> None:
    """``with BackgroundEmitter()`` starts the thread, and leaving it flushes and joins it."""
    topic = f"test-emit-{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics({topic: 1}))
    with BackgroundEmitter(topic, linger_s=60) as emitter:
        assert emitter._thread.is_alive()
        for i in range(50):
            emitter.emit("svc", "v1", {"latency_ms": float(i)})
    assert emitter.emitter.sent == 50 and not emitter._thread.is_alive()
    assert emitter._loop.is_closed()
    assert len(asyncio.run(read_events(topic, 50))) == 50
