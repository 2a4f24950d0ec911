"""The Faust app: thin agents that decode, call the core, and send.

- ``monitor`` reads evaluation events (keyed by service, so one service's state lives on one
  partition and moves with it), keeps each service's detector state in a changelogged table,
  and sends rollback commands, alerts, audit records and dead letters.
- ``actuate`` reads the commands topic and executes commands against the Redis pointer.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import faust
from faust.types import TP

from actions.approvals import PendingCommands
from actions.connect import async_redis_client
from actions.pointer import PointerStore
from detectors.policy import Policy
from rollguard.errors import ServiceUnavailable
from streams.actuator import Actuator
from streams.checkpoint import Checkpoints, applied_offset_key
from streams.gaps import GapGuard
from streams.messages import dead_letter
from streams.processor import EventProcessor, Outputs
from streams.roles import PointerCache
from streams.settings import WorkerSettings
from streams.table import StateTable

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_S = 1.0
# Faust's default is 1 MB per partition per fetch: at 100k events/s the agent then waits for
# the next fetch more than half of the time (measured: 28k events/s, agent idle 60 %); with
# 8 MB it idles about 2 % (63k on the same busy machine). A message is at most ~1 MB.
FETCH_BYTES_PER_PARTITION = 8 * 1024**2
STATE_TABLE = "monitor-state"


async def until_available(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """Retry while Redis is unreachable: events wait in Kafka meanwhile, none is lost."""
    while True:
        try:
            return await call()
        except ServiceUnavailable as exc:
            log.warning("%s waits for Redis: %s", what, exc)
            await asyncio.sleep(RETRY_S)


def create_app(settings: WorkerSettings, policy: Policy) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        topic_partitions=settings.partitions,
        datadir=settings.data_dir,
        web_enabled=False,
        producer_linger_ms=1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        # A worker that dies (SIGKILL, lost host) gives its partitions up after 10 s, not 60.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        stream_wait_empty=False,
        Table=StateTable,
        consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION,
    )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes,
                           "key_serializer": "raw", "value_serializer": "raw"}
    events = app.topic(settings.topic_events, partitions=settings.partitions, **raw)
    commands = app.topic(settings.topic_commands, partitions=1, **raw)
    alerts = app.topic(settings.topic_alerts, partitions=1, **raw)
    audit = app.topic(settings.topic_audit, partitions=1, **raw)
    dead = app.topic(settings.topic_dead, partitions=1, **raw)
    # key_type/value_type bytes make the changelog raw bytes (our versioned state encoding).
    states = cast(StateTable, app.Table(STATE_TABLE, default=None,
                                        partitions=settings.partitions, key_type=bytes,
                                        value_type=bytes))

    redis = async_redis_client(settings.redis_url)
    store = PointerStore(redis, settings.secret)
    pointers = PointerCache(store)
    processor = EventProcessor(policy, settings.secret)
    actuator = Actuator(store, PendingCommands(redis), settings.secret)
    counts: Counter[str] = Counter()
    guard = GapGuard()
    marks = Checkpoints(settings.checkpoint_s)
    acks: dict[str, faust.StreamT[bytes]] = {}

    async def send_all(topic: faust.TopicT, values: list[bytes], key: bytes | None,
                       ) -> list[Awaitable[Any]]:
        return [await topic.send(key=key, value=value) for value in values]

    unacked: dict[int, list[faust.EventT[bytes]]] = {}

    async def checkpoint(partition: int, now: float) -> None:
        # Services first, then the partition's offset: a crash in between leaves services
        # that skip what they already hold (streams/checkpoint.py). Only then are the
        # messages acknowledged, so the committed offset never runs ahead of the stored
        # state (Faust flushes these writes before it commits).
        for key, value in marks.writes(partition, now, processor.state_of):
            states.write(partition, key, value)
        for done in unacked.pop(partition, []):
            await acks["stream"].ack(done)

    @app.agent(events)
    async def monitor(stream: faust.StreamT[bytes]) -> None:
        # Manual acks: a message is acknowledged once a checkpoint holds its effect.
        manual = acks["stream"] = cast(faust.Stream[bytes], stream).noack()
        async for event in manual.events():
            message = event.message
            partition, now = message.partition, time.monotonic()
            unacked.setdefault(partition, []).append(event)
            if marks.applied(partition) is None:
                stored = states.get(applied_offset_key(partition))
                marks.restore(partition, int(stored) if stored else None)
            verdict = guard.admit(partition, message.offset, marks.applied(partition), now)
            if verdict.seek_to is not None:
                log.warning("monitor: offsets skipped on %s[%d]; reading again from %d",
                            message.topic, partition, verdict.seek_to)
                await app.consumer.seek(message.tp, verdict.seek_to)
            if verdict.process:
                service, out = await handle_events(event.key, event.value, message.offset)
                marks.note(partition, service, message.offset, now)
                await send_all(dead, out.dead, event.key)
                if out.decisions:
                    # What a decision sent must be in Kafka before the state that made it
                    # is checkpointed: a crash in between then repeats the decision
                    # (commands are idempotent), never loses it.
                    sent = [*await send_all(alerts, out.alerts, event.key),
                            *await send_all(audit, out.audit, event.key),
                            *await send_all(commands, out.commands, event.key)]
                    await asyncio.gather(*sent)
                if out.decisions or marks.due(partition, now):
                    await checkpoint(partition, now)
            # Faust's fetcher runs on this event loop and needs turns; a batch of events
            # keeps the loop busy for milliseconds, so hand it a turn after each message.
            await asyncio.sleep(0)

    @app.timer(max(settings.checkpoint_s / 2, 0.05))
    async def checkpoint_idle() -> None:
        # A partition that went quiet is checkpointed here, so its last messages are
        # committed without waiting for more traffic.
        now = time.monotonic()
        for partition in list(unacked):
            if marks.applied(partition) is not None and marks.due(partition, now):
                await checkpoint(partition, now)

    async def handle_events(key: bytes | None, value: bytes | None,
                            offset: int) -> tuple[str | None, Outputs]:
        service_hint = key.decode("utf-8", "replace") if key else None
        pointer = None
        if service_hint:
            pointer = await until_available(
                "monitor", lambda s=service_hint: pointers.get(s))  # type: ignore[misc]
        try:
            service, out = processor.handle(key, value, states.get(key) if key else None,
                                            pointer, offset)
        except Exception:  # a bug must not stop the stream: park the message, go on
            log.exception("monitor: message for %r could not be processed", service_hint)
            return None, Outputs(dead=[dead_letter("processing_error", "", value)])
        counts["events"] += out.events
        counts["rejected"] += len(out.dead)
        if out.commands:
            pointers.invalidate(service or "")
        return service, out

    @app.agent(commands)
    async def actuate(stream: faust.StreamT[bytes]) -> None:
        async for key, value in stream.items():
            out = await until_available("actuator", lambda v=value: actuator.handle(v))  # type: ignore[misc]
            for record in out.outcomes:
                pointers.invalidate(record["service"])
            await send_all(alerts, out.alerts, key)
            await send_all(audit, out.audit, key)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_monitors(sender: Any, revoked: Any, **_: Any) -> None:
        # The table is the truth after a rebalance; live copies may belong elsewhere now.
        processor.forget()
        guard.forget()
        marks.forget()
        unacked.clear()  # not acknowledged: whoever owns them now reads them again

    @app.timer(GapGuard.retry_s)
    async def reseek() -> None:
        # A seek can lose the race against messages already fetched: repeat it until the
        # missing offset arrives (streams/gaps.py).
        for partition, offset in guard.due(time.monotonic()):
            await app.consumer.seek(TP(settings.topic_events, partition), offset)

    @app.task
    async def settle_heap() -> None:
        # Everything built at start-up (Faust, aiokafka, the policy) lives as long as the
        # process: keep it out of the collector's full scans, which otherwise pause the loop
        # for tens of milliseconds now and then (seen in processes with many live objects).
        gc.collect()
        gc.freeze()

    @app.timer(30.0)
    async def report() -> None:
        if counts:
            log.info("monitor: %d events, %d rejected", counts["events"], counts["rejected"])

    app.conf.rollguard_counts = counts  # for tests and benchmarks in the same process
    return app
