"""The worker: the partition loop and the edge that carries out its effects, as one object.

The Faust agents, timers and signal handlers of :func:`rollguard.streams.app.create_app` are
one line each: they hand their input to a :class:`Worker` method. The loop
(:class:`rollguard.streams.partition.PartitionLoop`) decides, with no Faust in it; the edge
(:class:`rollguard.streams.app.Edge`) sends, writes, seeks and acknowledges in the order that
makes each event count once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

import faust

from rollguard.detectors.policy import Policy
from rollguard.streams import fleet
from rollguard.streams.app import Edge, Handle, owner_of
from rollguard.streams.otlp.edge import OtlpEdge
from rollguard.streams.partition import PartitionLoop
from rollguard.streams.settings import WorkerSettings

log = logging.getLogger(__name__)
YIELD_EVERY_S = 0.001


class Worker:
    """What the worker's agents and timers do."""

    def __init__(self, edge: Edge, settings: WorkerSettings, policy: Policy) -> None:
        self.edge = edge
        self.settings = settings
        edge.commanding.actuator.approvals = policy.approvals
        self.loop: PartitionLoop[Handle] = PartitionLoop(
            policy, settings.secret, edge.states.get, settings.checkpoint_s,
            owner=owner_of(settings.partitions), command_ttl_s=settings.command_ttl_s,
            topics=(settings.topic_events, settings.topic_by_service))
        edge.metrics.watch(self.loop, edge.ends)
        self.otlp = OtlpEdge(edge.app, settings, policy, edge.by_service, edge.dead)
        edge.metrics.watch_otlp(self.otlp.loop)
        edge.metrics.watch_gaps(self.loop.guard, edge.commanding.guard, self.otlp.loop.guard)

    async def judge_each(self, stream: faust.StreamT[bytes], forwarded: bool) -> None:
        """Judge each message of the events topic (or the by-service topic, ``forwarded``)
        and carry out its effects before the next one; share the fleet's moves it told."""
        # Manual acks: a message is acknowledged once a checkpoint holds its effect.
        manual = cast(faust.Stream[bytes], stream).noack()
        edge, loop = self.edge, self.loop
        turn = time.monotonic()
        async for event in manual.events():
            await edge.carry_out(await edge.step(loop, manual, event, forwarded))
            if loop.monitors.fleet.outbox:  # (rare: no await per message otherwise)
                await fleet.share(loop.monitors.fleet, edge.fleet)
            # Faust's fetcher and the actuator run on this event loop and need turns, which
            # a stream of buffered messages never gives: hand them one every millisecond
            # (after each message, a turn cost about 3 % of the worker's CPU).
            now = time.monotonic()
            if now - turn >= YIELD_EVERY_S:
                turn = now
                await asyncio.sleep(0)

    async def checkpoint_idle(self) -> None:
        """Quiet partitions are checkpointed here; seeks that lost a race are repeated (or
        given up where the offsets sought are below the log start). Not while Faust
        rebalances: it has paused the partitions (so they look stalled), recovers the table
        the checkpoints go to, and seeks each partition to its committed offset itself."""
        if self.edge.app.rebalancing:
            return
        now = time.monotonic()
        retrying = self.loop.guard.retrying(now)
        starts = await self.edge.starts(retrying) if retrying else None
        await self.edge.carry_out(self.loop.on_timer(now, self.edge.ends(), starts))

    def on_revoked(self) -> None:
        """After a rebalance the table is the truth (see PartitionLoop.on_revoked)."""
        self.loop.on_revoked()
        self.otlp.loop.on_revoked()
        self.edge.commanding.forget()

    async def hear_the_fleet(self) -> None:
        """Read the fleet's moves into the monitors' view, for as long as the worker runs."""
        await fleet.hear(self.loop.monitors.fleet, self.settings.topic_fleet,
                         self.settings.kafka_bootstrap)

    def report(self) -> None:
        counts = self.loop.counts
        if counts:
            log.info("monitor: %d events, %d rejected, %d messages forwarded",
                     counts["events"], counts["rejected"], counts["forwarded"])
        otlp = self.otlp.loop.counts
        if otlp:
            log.info("otlp: %d messages, %d records, %d events forwarded, %d rejected, "
                     "%d held now, %d messages waiting", otlp["messages"], otlp["records"],
                     otlp["events"], otlp["rejected"], self.otlp.loop.join.held,
                     self.otlp.loop.waiting)
