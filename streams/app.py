"""The Faust app: thin agents that decode, call the core, and send.

- ``monitor`` reads evaluation events (keyed by service, so one service's state lives on one
  partition and moves with it), keeps each service's detector state in a changelogged table,
  and sends rollback commands, alerts, audit records and dead letters.
- ``actuate`` reads the commands topic and executes commands against the Redis pointer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import faust
from detectors.policy import Policy

from actions.approvals import PendingCommands
from actions.connect import async_redis_client
from actions.pointer import PointerStore
from rollguard.errors import ServiceUnavailable
from streams.actuator import Actuator
from streams.messages import dead_letter
from streams.processor import EventProcessor
from streams.roles import PointerCache
from streams.settings import WorkerSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_S = 1.0
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
        stream_wait_empty=False,
    )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes,
                           "key_serializer": "raw", "value_serializer": "raw"}
    events = app.topic(settings.topic_events, partitions=settings.partitions, **raw)
    commands = app.topic(settings.topic_commands, partitions=1, **raw)
    alerts = app.topic(settings.topic_alerts, partitions=1, **raw)
    audit = app.topic(settings.topic_audit, partitions=1, **raw)
    dead = app.topic(settings.topic_dead, partitions=1, **raw)
    states = app.Table(STATE_TABLE, default=None, partitions=settings.partitions,
                       schema=faust.Schema(**raw))

    redis = async_redis_client(settings.redis_url)
    store = PointerStore(redis, settings.secret)
    pointers = PointerCache(store)
    processor = EventProcessor(policy, settings.secret)
    actuator = Actuator(store, PendingCommands(redis), settings.secret)
    counts: Counter[str] = Counter()

    async def send_all(topic: faust.TopicT, values: list[bytes], key: bytes | None) -> None:
        for value in values:
            await topic.send(key=key, value=value)

    @app.agent(events)
    async def monitor(stream: faust.StreamT[bytes]) -> None:
        async for key, value in stream.items():
            service_hint = key.decode("utf-8", "replace") if key else None
            pointer = None
            if service_hint:
                pointer = await until_available(
                    "monitor", lambda s=service_hint: pointers.get(s))  # type: ignore[misc]
            try:
                service, out = processor.handle(key, value, states.get(key) if key else None,
                                                pointer)
            except Exception:  # a bug must not stop the stream: park the message, go on
                log.exception("monitor: message for %r could not be processed", service_hint)
                await dead.send(key=key, value=dead_letter("processing_error", "", value))
                continue
            counts["events"] += out.events
            counts["rejected"] += len(out.dead)
            if service is not None:
                states[service.encode()] = processor.monitors[service].to_bytes()
            if out.commands:
                pointers.invalidate(service or "")
            await send_all(dead, out.dead, key)
            await send_all(alerts, out.alerts, key)
            await send_all(audit, out.audit, key)
            await send_all(commands, out.commands, key)

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

    @app.timer(30.0)
    async def report() -> None:
        if counts:
            log.info("monitor: %d events, %d rejected", counts["events"], counts["rejected"])

    app.conf.rollguard_counts = counts  # for tests and benchmarks in the same process
    return app
