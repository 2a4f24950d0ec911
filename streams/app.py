"""The Faust app: thin agents that feed the partition loop and carry out its effects.

- ``monitor`` reads evaluation events into :class:`rollguard.streams.partition.PartitionLoop`, which
  keeps each service's detector state and checkpoints it to a changelogged table; the agent
  sends what it returns (rollback commands, alerts, audit records, dead letters, messages
  forwarded to the partition that owns their service), writes the table, seeks and
  acknowledges. A service's state lives on the partition its key hashes to with Kafka's
  default (murmur2) partitioner, and moves with it.
- ``judge`` does the same for the by-service topic: the messages ``monitor`` forwarded
  because a producer put them on another partition (librdkafka's CRC32 partitioner, no key).
- Record batches the Kafka client cannot decode are dead-lettered
  (:mod:`rollguard.streams.undecodable`).
- ``read_otlp_logs`` and ``read_otlp_spans`` read the OpenTelemetry Collector's topics
  (:mod:`rollguard.streams.otlp.edge`): each message's events forwarded, per service, to the
  by-service topic, where ``judge`` judges them.
- ``actuate`` reads the commands topic into :class:`rollguard.actions.actuator.Actuator`, which
  executes commands against the Redis pointer (:mod:`rollguard.streams.commanding`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any, cast

import faust
from aiokafka.partitioner import murmur2
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from rollguard.actions.actuator import Actuator
from rollguard.actions.approvals import PendingCommands
from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import PointerStore
from rollguard.actions.pointer_cache import PointerCache
from rollguard.actions.state import PointerState
from rollguard.base.errors import ServiceUnavailable
from rollguard.detectors.policy import Policy
from rollguard.streams import metrics_http, undecodable
from rollguard.streams.checkpoint import FORWARDED
from rollguard.streams.commanding import Commanding
from rollguard.streams.connect import faust_credentials
from rollguard.streams.gaps import GapGuard
from rollguard.streams.metrics import WorkerMetrics
from rollguard.streams.offsets import log_starts, seek
from rollguard.streams.otlp.loop import FORWARD_LINGER_S
from rollguard.streams.partition import Effects, PartitionLoop
from rollguard.streams.redis_wait import until_available
from rollguard.streams.settings import STATE_TABLE, WorkerSettings
from rollguard.streams.table import StateTable

log = logging.getLogger(__name__)
# Faust's default is 1 MB per partition per fetch: at 100k events/s the agent then waits for
# the next fetch more than half of the time (measured: 28k events/s, agent idle 60 %); with
# 8 MB it idles about 2 % (63k on the same busy machine). A message is at most ~1 MB.
FETCH_BYTES_PER_PARTITION = 8 * 1024**2
Handle = tuple[faust.StreamT[bytes], faust.EventT[bytes]]  # what acknowledges a message


def owner_of(partitions: int) -> Callable[[bytes], int]:
    """The partition Kafka's default partitioner (murmur2, as aiokafka, Java and franz-go)
    gives a key: where that service's state lives."""
    @lru_cache(maxsize=65_536)
    def owner(key: bytes) -> int:
        return (murmur2(key) & 0x7FFFFFFF) % partitions
    return owner


def new_app(settings: WorkerSettings) -> faust.App:
    """The Faust app with the worker's settings (no agents yet)."""
    return faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials(settings.kafka_security),
        store="memory://",
        # No standby tables: the store is in memory, so a worker taking a partition over
        # reads its changelog from the start whatever it holds. With a standby, Faust gave
        # the surviving worker of two the same changelog partition as active and standby in
        # one rebalance, and its recovery waited for ever (seen after a SIGKILL).
        table_standby_replicas=0,
        topic_partitions=settings.partitions,
        datadir=settings.data_dir,
        web_enabled=False,
        producer_linger_ms=1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        # A worker that dies (SIGKILL, lost host) gives its partitions up after this long
        # (10 s by default, not Faust's 60); heartbeats at least three times within it.
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(2.0, settings.session_timeout_s / 3),
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
        self.by_service = app.topic(settings.topic_by_service, partitions=settings.partitions,
                                    **raw)
        self.commands = app.topic(settings.topic_commands, partitions=1,
                                  config=settings.topic_configs()[settings.topic_commands],
                                  **raw)
        self.alerts = app.topic(settings.topic_alerts, partitions=1, **raw)
        self.audit = app.topic(settings.topic_audit, partitions=1, **raw)
        self.dead = app.topic(settings.topic_dead, partitions=1, **raw)
        self.fleet = app.topic(settings.topic_fleet, partitions=1,
                               config=settings.topic_configs()[settings.topic_fleet], **raw)
        # key_type/value_type bytes make the changelog raw bytes (our state encoding).
        self.states = cast(StateTable, app.Table(STATE_TABLE, default=None,
                                                 partitions=settings.partitions,
                                                 key_type=bytes, value_type=bytes))
        redis = async_redis_client(settings.redis_url)
        store = PointerStore(redis, settings.secret)
        self.pointers = PointerCache(store)
        self.forwarding: list[Awaitable[Any]] = []  # forwards sent, maybe not yet in Kafka
        self.metrics = WorkerMetrics()
        self.metrics.watch_pointers(self.pointers.epochs)
        actuator = Actuator(store, PendingCommands(redis), settings.secret,
                            command_ttl_s=settings.command_ttl_s)
        self.commanding = Commanding(app, self.commands, actuator, self.pointers,
                                     self.metrics, self.alerts, self.audit)
        self.joined = False  # partitions were assigned at least once (the group is joined)
        self.redis_problem: str | None = None  # why the last pointer refresh failed

    def not_ready(self) -> str | None:
        """Why the worker is not ready (``/readyz``), None when it is: it has joined its
        consumer group and its last pointer refresh reached Redis."""
        if not self.joined:
            return "the worker has not joined its Kafka consumer group yet"
        return self.redis_problem

    def ends(self) -> dict[int, int | None]:
        """The end offset of each events-topic partition held (for the lag metric)."""
        consumer = self.app.consumer
        try:
            held = consumer.assignment()
        except ConsumerNotStarted:
            return {}
        return {tp.partition: consumer.highwater(tp) for tp in held
                if tp.topic == self.events_topic}

    def tp_of(self, lane: int) -> TP:
        """The topic partition a lane of the partition loop reads: ``lane`` of the events
        topic, or ``lane - FORWARDED`` of the by-service topic."""
        if lane >= FORWARDED:
            return TP(self.by_service.get_topic_name(), lane - FORWARDED)
        return TP(self.events_topic, lane)

    async def starts(self, lanes: list[int]) -> dict[int, int]:
        """The log start offsets of ``lanes`` (the gap guard's, when it seeks again)."""
        tps = {lane: self.tp_of(lane) for lane in lanes}
        found = await log_starts(self.app.consumer, tps.values())
        return {lane: found[tp] for lane, tp in tps.items() if tp in found}

    @staticmethod
    async def send_all(topic: faust.TopicT, values: list[bytes], key: bytes | None,
                       ) -> list[Awaitable[Any]]:
        return [await topic.send(key=key, value=value) for value in values]

    async def pointer_of(self, service: str) -> PointerState | None:
        """The pointer of ``service`` (None: none registered)."""
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
            self.redis_problem = str(exc)
        else:
            self.redis_problem = None

    async def step(self, loop: PartitionLoop[Handle], stream: faust.StreamT[bytes],
                   event: faust.EventT[bytes], forwarded: bool) -> Effects[Handle]:
        """One message of the events topic, or of the by-service topic if ``forwarded``."""
        message, now, handle = event.message, time.monotonic(), (stream, event)
        found = undecodable.take(message.topic, message.partition, message.offset)
        if found is not None:
            lane = message.partition + (FORWARDED if forwarded else 0)
            return loop.on_undecodable(lane, found.first, found.last, found.reason, now,
                                       handle)
        routed = loop.route(message.partition, event.key, event.value, forwarded)
        # only the service this partition judges needs its pointer
        service = routed.service if routed.owned else None
        pointer = await self.pointer_of(service) if service is not None else None
        return loop.on_routed(routed, message.offset, event.value, pointer, now, handle)

    async def carry_out(self, out: Effects[Handle]) -> None:
        """Carry out effects in the order streams/partition.py gives: what a decision sent
        is in Kafka before the table holds the state that made it; forwards are in Kafka
        before any ack; acks come last."""
        for lane, offset in out.seeks:
            await seek(self.app.consumer, self.tp_of(lane), offset)
        for key, value in out.forwards:
            self.forwarding.append(await self.by_service.send(key=key, value=value))
        await self.send_all(self.dead, out.dead, out.key)
        if out.decisions or out.audit or out.alerts or out.commands:
            await asyncio.gather(*await self.send_all(self.alerts, out.alerts, out.key),
                                 *await self.send_all(self.audit, out.audit, out.key),
                                 *await self.send_all(self.commands, out.commands, out.key))
            self.metrics.on_decisions(out.decisions)
        for service in out.commanded:
            self.pointers.invalidate(service)
        for partition, key, value in out.writes:
            self.states.write(partition, key, value)
        if out.acks and self.forwarding:
            sent, self.forwarding = self.forwarding, []
            await asyncio.gather(*sent)
        for stream, done in out.acks:
            await stream.ack(done)

def create_app(settings: WorkerSettings, policy: Policy) -> faust.App:
    """The worker's Faust app: each agent, timer and signal handler is one line that hands
    its input to the :class:`rollguard.streams.worker.Worker`, which carries it out."""
    from rollguard.streams.worker import Worker

    undecodable.install()
    app = new_app(settings)
    edge = Edge(app, settings)
    worker = Worker(edge, settings, policy)
    if settings.metrics_addr is not None:
        serve_metrics(app, edge, settings.metrics_addr)

    @app.agent(edge.events)
    async def monitor(stream: faust.StreamT[bytes]) -> None:
        await worker.judge_each(stream, forwarded=False)

    @app.agent(edge.by_service)
    async def judge(stream: faust.StreamT[bytes]) -> None:
        await worker.judge_each(stream, forwarded=True)

    otlp = worker.otlp
    if "logs" in otlp.topics:
        @app.agent(otlp.topics["logs"])
        async def read_otlp_logs(stream: faust.StreamT[bytes]) -> None:
            await otlp.read_each(stream, "logs")

    if "traces" in otlp.topics:
        @app.agent(otlp.topics["traces"])
        async def read_otlp_spans(stream: faust.StreamT[bytes]) -> None:
            await otlp.read_each(stream, "traces")

    @app.timer(GapGuard.retry_s)
    async def expire_otlp() -> None:
        await otlp.expire()

    @app.timer(FORWARD_LINGER_S)
    async def forward_otlp() -> None:
        await otlp.tick()

    @app.timer(max(min(settings.checkpoint_s / 2, GapGuard.retry_s), 0.05))
    async def checkpoint_idle() -> None:
        await worker.checkpoint_idle()

    @app.timer(edge.pointers.ttl_s)
    async def refresh_pointers() -> None:
        await edge.refresh_pointers()

    @app.agent(edge.commands)
    async def actuate(stream: faust.StreamT[bytes]) -> None:
        await edge.commanding.read(stream)

    @app.timer(GapGuard.retry_s)
    async def reread_commands() -> None:
        await edge.commanding.reread(time.monotonic())

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def joined(sender: Any, assigned: Any, **_: Any) -> None:
        edge.joined = True

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_monitors(sender: Any, revoked: Any, **_: Any) -> None:
        worker.on_revoked()

    app.task(settle_heap)

    @app.task
    async def hear_the_fleet() -> None:
        await worker.hear_the_fleet()

    @app.timer(30.0)
    async def report() -> None:
        worker.report()

    app.conf.rollguard_counts = worker.loop.counts  # for tests and benchmarks in one process
    return app


async def settle_heap() -> None:
    """Everything built at start-up (Faust, aiokafka, the policy) lives as long as the
    process: keep it out of the collector's full scans, which otherwise pause the loop for
    tens of milliseconds now and then (seen in processes with many live objects)."""
    gc.collect()
    gc.freeze()


def serve_metrics(app: faust.App, edge: Edge, addr: tuple[str, int]) -> None:
    """Serve ``/metrics`` and the probes at ``addr`` from the worker's own loop; the address
    is bound now, so one in use is refused before the worker starts."""
    sock = metrics_http.bind(addr)

    @app.task
    async def serve() -> None:
        runner = await metrics_http.serve(sock, edge.metrics, edge.not_ready)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
