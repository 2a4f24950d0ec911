"""Emit one evaluation event per model output from serving code: cheap, buffered, batched.

``emit()`` only appends to an in-memory buffer (a ``deque`` append: safe from any thread and
never blocking the request); a background task sends the buffer to Kafka in batches, one
message per service and batch, keyed by service, its events as columns (one block per
release and cohort: see docs/wire-format.md), which the worker reads a column at a time.
When the buffer is full the event is dropped and counted, with a warning, rather than
stalling the server. ``close()`` flushes.

Asyncio servers (leaving the block flushes and closes; ``start()``/``close()`` do the same)::

    async with Emitter() as emitter:
        emitter.emit("support-bot", "v2", {"hallucination": 0, "latency_ms": 812.0})

Threaded servers use ``BackgroundEmitter``, which runs the same thing on its own thread:
``with BackgroundEmitter() as emitter: ...``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

from rollguard.base.config import KafkaSecurity, kafka_bootstrap
from rollguard.streams.wire import encode_blocks

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

log = logging.getLogger(__name__)

DEFAULT_TOPIC = os.environ.get("ROLLGUARD_TOPIC_EVENTS", "rollguard.events")
DEFAULT_LINGER_S = 1.0


class Emitter:
    """Buffered, batched producer of evaluation events.

    Parameters
    ----------
    max_buffer
        Events held before new ones are dropped (counted in ``dropped``).
    batch_events
        Most events in one Kafka message.
    linger_s
        How long the sender waits to gather a batch; the latency an event may add. The
        worker's cost is mostly per message, so a service's events of one second in one
        message cost it a fraction of one message each (bench/fleet_throughput.py: at
        1,000 services of 0.5-50 events/s, 12.7 events per message at 1 s against 1.3 at
        20 ms), while a second more before an event is judged changes nothing in decisions
        that take minutes of evidence. A process that dies without ``close()`` loses at
        most this much of its events.
    security
        How to authenticate to Kafka (default: ``KAFKA_SECURITY_PROTOCOL`` and the other
        ``KAFKA_*`` variables, as every part of rollguard reads them).
    """

    def __init__(
        self,
        topic: str = DEFAULT_TOPIC,
        bootstrap: str | None = None,
        *,
        max_buffer: int = 100_000,
        batch_events: int = 500,
        linger_s: float = DEFAULT_LINGER_S,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.topic = topic
        self.security = security or KafkaSecurity.from_env()
        self.bootstrap = bootstrap or kafka_bootstrap()
        self.max_buffer = max_buffer
        self.batch_events = batch_events
        self.linger_s = linger_s
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self._buffer: deque[tuple[str, dict[str, Any]]] = deque()
        self._ids = itertools.count()
        self._prefix = uuid.uuid4().hex[:12]
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        # The Kafka client is loaded here, not on import: `from rollguard import Emitter`
        # stays cheap for a serving process (bench/client_footprint.py).
        from aiokafka import AIOKafkaProducer

        from rollguard.streams.connect import CONNECT_TIMEOUT_MS, client_options, start_client

        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            linger_ms=5,
            request_timeout_ms=CONNECT_TIMEOUT_MS,
            max_request_size=2_000_000,
            **client_options(self.security),
        )
        await start_client(producer, self.bootstrap, self.security)
        self._producer = producer
        self._task = asyncio.create_task(self._run(), name="rollguard-emitter")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def emit(
        self,
        service: str,
        release: str,
        metrics: Mapping[str, float | bool],
        *,
        cohort: str | None = None,
        event_id: str | None = None,
        ts: float | None = None,
    ) -> bool:
        """Queue one event; False when the buffer was full and the event was dropped."""
        if len(self._buffer) >= self.max_buffer:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("rollguard emitter buffer full: %d events dropped", self.dropped)
            return False
        event: dict[str, Any] = {
            "event_id": event_id or f"{self._prefix}-{next(self._ids)}",
            "ts": time.time() if ts is None else ts,
            "service": service,
            "release": release,
            "metrics": dict(metrics),
        }
        if cohort is not None:
            event["cohort"] = cohort
        self._buffer.append((service, event))
        return True

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def flush(self) -> None:
        """Send everything buffered now and wait until Kafka has it."""
        await self._send_buffered()

    async def close(self) -> None:
        """Flush and stop; events emitted after this are dropped."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._producer is not None:
            await self._send_buffered()
            await self._producer.stop()
            self._producer = None

    async def _run(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.linger_s)
            try:
                await self._send_buffered()
            except Exception:  # keep emitting after a broker hiccup; the loss is counted
                log.exception("rollguard emitter: sending a batch failed")

    async def _send_buffered(self) -> None:
        if self._producer is None or not self._buffer:
            return
        by_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for _ in range(len(self._buffer)):
            service, event = self._buffer.popleft()
            by_service[service].append(event)
        deliveries = []
        for service, events in by_service.items():
            key = service.encode()
            for i in range(0, len(events), self.batch_events):
                chunk = events[i : i + self.batch_events]
                future = await self._producer.send(self.topic, encode_blocks(chunk), key=key)
                deliveries.append((len(chunk), future))
        for count, future in deliveries:
            try:
                await future
                self.sent += count
            except Exception:
                self.failed += count
                log.exception("rollguard emitter: %d events were not delivered", count)


class BackgroundEmitter:
    """An ``Emitter`` on its own thread and event loop, for servers that are not asyncio."""

    def __init__(self, topic: str = DEFAULT_TOPIC, bootstrap: str | None = None,
                 **options: Any) -> None:
        self.emitter = Emitter(topic, bootstrap, **options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="rollguard-emitter")

    def start(self) -> None:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.emitter.start(), self._loop).result()
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)  # no thread left behind
            self._thread.join()
            self._loop.close()
            raise

    def emit(self, service: str, release: str, metrics: Mapping[str, float | bool],
             **fields: Any) -> bool:
        return self.emitter.emit(service, release, metrics, **fields)

    def close(self, timeout: float = 10.0) -> None:
        """Flush, stop the emitter and end its thread."""
        asyncio.run_coroutine_threadsafe(self.emitter.close(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
