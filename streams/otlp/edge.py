"""The Faust side of OpenTelemetry in: the OTLP topics read into
:class:`~rollguard.streams.otlp.loop.OtlpLoop`, and its effects carried out — forwards to the
by-service topic, dead letters, seeks, then the acknowledgements, only once every forward
and dead letter sent so far is in Kafka."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, cast

import faust
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from rollguard.detectors.policy import Policy
from rollguard.streams import undecodable
from rollguard.streams.offsets import seek
from rollguard.streams.otlp.loop import FORWARD_LINGER_S, OtlpLoop
from rollguard.streams.partition import Effects
from rollguard.streams.settings import WorkerSettings

Handle = tuple[faust.StreamT[bytes], faust.EventT[bytes]]
YIELD_EVERY_S = 0.001


class OtlpEdge:
    """The OTLP topics the worker reads (``topics`` by signal: ``logs``, ``traces``; none
    when both are off), the loop over them, and what carries its effects out."""

    def __init__(self, app: faust.App, settings: WorkerSettings, policy: Policy,
                 by_service: faust.TopicT, dead: faust.TopicT) -> None:
        raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes,
                               "key_serializer": "raw", "value_serializer": "raw"}
        self.app = app
        self.names = settings.otlp_topics
        self.topics = {signal: app.topic(name, **raw) for signal, name in self.names.items()}
        self.loop: OtlpLoop[Handle] = OtlpLoop(policy.opentelemetry, settings.otlp_encoding,
                                               self.names, linger_s=FORWARD_LINGER_S)
        self.by_service = by_service
        self.dead = dead
        self.sending: list[Awaitable[Any]] = []  # sent, maybe not yet in Kafka

    def tp_of(self, lane: int) -> TP:
        """The topic partition of a lane of the loop."""
        topic, partition = self.loop.where(lane)
        return TP(topic, partition)

    async def read_each(self, stream: faust.StreamT[bytes], signal: str) -> None:
        """Read each message of the ``signal`` topic into the loop and carry out its
        effects before the next; acknowledge only what the loop says may be."""
        manual = cast(faust.Stream[bytes], stream).noack()
        loop = self.loop
        turn = time.monotonic()
        async for event in manual.events():
            message, now = event.message, time.monotonic()
            found = undecodable.take(message.topic, message.partition, message.offset)
            if found is not None:
                out = loop.on_undecodable(signal, message.partition, found.first, found.last,
                                          found.reason, now, (manual, event))
            else:
                out = loop.on_message(signal, message.partition, message.offset, event.value,
                                      now, (manual, event))
            await self.carry_out(out)
            if now - turn >= YIELD_EVERY_S:  # give Faust's fetcher and the others a turn
                turn = now
                await asyncio.sleep(0)

    async def expire(self) -> None:
        """Held records whose window passed become dead letters; repeat seeks due, and seek
        partitions stalled short of their end (not while Faust rebalances: see
        :meth:`rollguard.streams.worker.Worker.checkpoint_idle`)."""
        if self.app.rebalancing:
            return
        await self.carry_out(self.loop.on_timer(time.monotonic(), self.ends()))

    async def tick(self) -> None:
        """Forward what was gathered once its linger passed (when no message comes)."""
        await self.carry_out(self.loop.on_tick(time.monotonic()))

    def ends(self) -> dict[int, int | None]:
        """The end offset of each OTLP partition held, by lane."""
        consumer = self.app.consumer
        try:
            held = consumer.assignment()
        except ConsumerNotStarted:
            return {}
        signals = {name: signal for signal, name in self.names.items()}
        return {self.loop.lane(signals[tp.topic], tp.partition): consumer.highwater(tp)
                for tp in held if tp.topic in signals}

    async def carry_out(self, out: Effects[Handle]) -> None:
        """Seek, send the forwards and dead letters, and acknowledge once all sent so far
        are in Kafka (an acknowledged message may free the acks of earlier ones' sends)."""
        for lane, offset in out.seeks:
            await seek(self.app.consumer, self.tp_of(lane), offset)
        for key, value in out.forwards:
            self.sending.append(await self.by_service.send(key=key, value=value))
        for value in out.dead:
            self.sending.append(await self.dead.send(key=None, value=value))
        if not out.acks:
            return
        if self.sending:
            sent, self.sending = self.sending, []
            await asyncio.gather(*sent)
        for stream, done in out.acks:
            await stream.ack(done)
