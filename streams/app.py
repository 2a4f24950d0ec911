"""The Faust app: thin agents that feed the partition loop and carry out its effects.

- ``monitor`` reads evaluation events (keyed by service, so one service's state lives on one
  partition and moves with it) into :class:`streams.partition.PartitionLoop`, which keeps
  each service's detector state and checkpoints it to a changelogged table; the agent sends
  what it returns (rollback commands, alerts, audit records, dead letters), writes the
  table, seeks and acknowledges.
- ``actuate`` reads the commands topic into :class:`actions.actuator.Actuator`, which
  executes commands against the Redis pointer.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import faust
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from actions.actuator import Actuator
from actions.approvals import PendingCommands
from actions.connect import async_redis_client
from actions.pointer import PointerStore
from actions.pointer_cache import PointerCache
from actions.state import PointerState
from detectors.policy import Policy
from rollguard.errors import ServiceUnavailable
from streams import metrics_http
from streams.gaps import GapGuard
from streams.metrics import WorkerMetrics
from streams.partition import Effects, PartitionLoop
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
YIELD_EVERY_S = 0.001


async def until_available(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """Retry while Redis is unreachable: events wait in Kafka meanwhile, none is lost."""
    while True:
        try:
            return await call()
        except ServiceUnavailable as exc:
            log.warning("%s waits for Redis: %s", what, exc)
            await asyncio.sleep(RETRY_S)


def new_app(settings: WorkerSettings) -> faust.App:
    """The Faust app with the worker's settings (no agents yet)."""
    return faust.App(
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


class Edge:
    """The worker's topics, state table and Redis pointers: what carries effects out."""

    def __init__(self, app: faust.App, settings: WorkerSettings) -> None:
        raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes,
                               "key_serializer": "raw", "value_serializer": "raw"}
        self.app = app
        self.events_topic = settings.topic_events
        self.events = app.topic(settings.topic_events, partitions=settings.partitions, **raw)
        self.commands = app.topic(settings.topic_commands, partitions=1, **raw)
        self.alerts = app.topic(settings.topic_alerts, partitions=1, **raw)
        self.audit = app.topic(settings.topic_audit, partitions=1, **raw)
        self.dead = app.topic(settings.topic_dead, partitions=1, **raw)
        # key_type/value_type bytes make the changelog raw bytes (our state encoding).
        self.states = cast(StateTable, app.Table(STATE_TABLE, default=None,
                                                 partitions=settings.partitions,
                                                 key_type=bytes, value_type=bytes))
        redis = async_redis_client(settings.redis_url)
        store = PointerStore(redis, settings.secret)
        self.pointers = PointerCache(store)
        self.actuator = Actuator(store, PendingCommands(redis), settings.secret)
        self.stream: faust.StreamT[bytes] | None = None  # the events stream, for acks
        self.metrics = WorkerMetrics()

    def ends(self) -> dict[int, int | None]:
        """The end offset of each events-topic partition held (for the lag metric)."""
        consumer = self.app.consumer
        try:
            held = consumer.assignment()
        except ConsumerNotStarted:
            return {}
        return {tp.partition: consumer.highwater(tp) for tp in held
                if tp.topic == self.events_topic}

    @staticmethod
    async def send_all(topic: faust.TopicT, values: list[bytes], key: bytes | None,
                       ) -> list[Awaitable[Any]]:
        return [await topic.send(key=key, value=value) for value in values]

    async def pointer_of(self, key: bytes | None) -> PointerState | None:
        """The pointer of the service a message's key names (None: unkeyed or unknown)."""
        if not key:
            return None
        service = key.decode("utf-8", "replace")
        known, pointer = self.pointers.cached(service)
        if known:
            return pointer
        return await until_available("monitor", lambda: self.pointers.get(service))

    async def refresh_pointers(self) -> None:
        """Renew the cached pointers; while Redis is away the monitor goes on with the
        pointers it has (the actuator keeps what it must write until Redis is back)."""
        try:
            await self.pointers.refresh()
        except ServiceUnavailable as exc:
            log.warning("monitor: pointers not refreshed: %s", exc)

    async def carry_out(self, out: Effects[faust.EventT[bytes]]) -> None:
        """Carry out effects in the order streams/partition.py gives: what a decision sent
        is in Kafka before the table holds the state that made it; acks come last."""
        for partition, offset in out.seeks:
            await self.app.consumer.seek(TP(self.events_topic, partition), offset)
        await self.send_all(self.dead, out.dead, out.key)
        if out.decisions:
            await asyncio.gather(*await self.send_all(self.alerts, out.alerts, out.key),
                                 *await self.send_all(self.audit, out.audit, out.key),
                                 *await self.send_all(self.commands, out.commands, out.key))
            self.metrics.on_decisions(out.decisions)
        for service in out.commanded:
            self.pointers.invalidate(service)
        for partition, key, value in out.writes:
            self.states.write(partition, key, value)
        for done in out.acks:
            assert self.stream is not None
            await self.stream.ack(done)

    async def actuate(self, key: bytes | None, value: bytes | None) -> None:
        """Execute one message of the commands topic; send its alerts and audit records."""
        out = await until_available("actuator", lambda: self.actuator.handle(value))
        for record in out.outcomes:
            self.pointers.invalidate(record["service"])
        self.metrics.on_actuated(out.audit)
        await self.send_all(self.alerts, out.alerts, key)
        await self.send_all(self.audit, out.audit, key)


def create_app(settings: WorkerSettings, policy: Policy) -> faust.App:
    app = new_app(settings)
    edge = Edge(app, settings)
    loop: PartitionLoop[faust.EventT[bytes]] = PartitionLoop(
        policy, settings.secret, edge.states.get, settings.checkpoint_s)
    edge.metrics.watch(loop, edge.ends)
    if settings.metrics_addr is not None:
        sock = metrics_http.bind(settings.metrics_addr)  # in use: refused before the start

        @app.task
        async def serve_metrics() -> None:
            runner = await metrics_http.serve(sock, edge.metrics)
            try:
                await asyncio.Event().wait()
            finally:
                await runner.cleanup()

    @app.agent(edge.events)
    async def monitor(stream: faust.StreamT[bytes]) -> None:
        # Manual acks: a message is acknowledged once a checkpoint holds its effect.
        manual = edge.stream = cast(faust.Stream[bytes], stream).noack()
        turn = time.monotonic()
        async for event in manual.events():
            message, key = event.message, event.key
            now = time.monotonic()
            await edge.carry_out(loop.on_message(message.partition, message.offset, key,
                                                 event.value, await edge.pointer_of(key),
                                                 now, event))
            # Faust's fetcher and the actuator run on this event loop and need turns, which
            # a stream of buffered messages never gives: hand them one every millisecond
            # (after each message, a turn cost about 3 % of the worker's CPU).
            if now - turn >= YIELD_EVERY_S:
                turn = now
                await asyncio.sleep(0)

    @app.timer(max(min(settings.checkpoint_s / 2, GapGuard.retry_s), 0.05))
    async def checkpoint_idle() -> None:
        # Quiet partitions are checkpointed here; seeks that lost a race are repeated.
        await edge.carry_out(loop.on_timer(time.monotonic()))

    @app.timer(edge.pointers.ttl_s)
    async def refresh_pointers() -> None:
        await edge.refresh_pointers()

    @app.agent(edge.commands)
    async def actuate(stream: faust.StreamT[bytes]) -> None:
        async for key, value in stream.items():
            await edge.actuate(key, value)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_monitors(sender: Any, revoked: Any, **_: Any) -> None:
        loop.on_revoked()

    @app.task
    async def settle_heap() -> None:
        # Everything built at start-up (Faust, aiokafka, the policy) lives as long as the
        # process: keep it out of the collector's full scans, which otherwise pause the loop
        # for tens of milliseconds now and then (seen in processes with many live objects).
        gc.collect()
        gc.freeze()

    @app.timer(30.0)
    async def report() -> None:
        if loop.counts:
            log.info("monitor: %d events, %d rejected",
                     loop.counts["events"], loop.counts["rejected"])

    app.conf.rollguard_counts = loop.counts  # for tests and benchmarks in the same process
    return app
