"""The worker's commands side: the commands topic read into
:class:`rollguard.actions.actuator.Actuator`, which executes each command against the Redis
pointer, and read again where Faust dropped messages it had fetched (around a restart or
rebalance, faust-streaming #596)."""

from __future__ import annotations

import logging

import faust
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from rollguard.actions.actuator import Actuator
from rollguard.actions.pointer_cache import PointerCache
from rollguard.actions.receipt import receipt
from rollguard.base.errors import ServiceUnavailable
from rollguard.streams.gaps import GapGuard
from rollguard.streams.metrics import WorkerMetrics
from rollguard.streams.redis_wait import until_available

log = logging.getLogger(__name__)


def last_carried_out(done: int | None, committed: int | None) -> int:
    """The last commands offset known to be carried out: ``done`` by this process, else the
    one before the group's ``committed`` offset; with none committed (a new group: Faust
    records offset 0 as None too) -1, so every command from the start is due. A command
    sent while the first workers of a group rebalance, before anything was committed, is
    otherwise lost when Faust drops it.

    >>> last_carried_out(7, 3), last_carried_out(None, 3), last_carried_out(None, None)
    (7, 2, -1)
    """
    if done is not None:
        return done
    return -1 if committed is None else committed - 1


class Commanding:
    """The actuator's side of the worker: the commands topic, what was carried out of it,
    and the alerts and audit records its outcomes send."""

    def __init__(self, app: faust.App, commands: faust.TopicT, actuator: Actuator,
                 pointers: PointerCache, metrics: WorkerMetrics, alerts: faust.TopicT,
                 audit: faust.TopicT) -> None:
        self.app = app
        self.commands = commands
        self.actuator = actuator
        self.pointers = pointers
        self.metrics = metrics
        self.alerts = alerts
        self.audit = audit
        self.guard = GapGuard()
        self.done: int | None = None  # the last commands offset carried out here
        self.in_hand: int | None = None  # the one being carried out (Redis may be away)

    async def read(self, stream: faust.StreamT[bytes]) -> None:
        """Carry out each message of the commands topic, keeping track of where it is."""
        async for event in stream.events():
            self.in_hand = event.message.offset
            try:
                await self.actuate(event.key, event.value, self.receipt_of(event.message))
            finally:
                self.in_hand = None
            self.done = event.message.offset

    async def reread_stalled(self, now: float) -> None:
        """Seek back to the commands that wait, if :meth:`stalled` finds some."""
        offset = self.stalled(now)
        if offset is not None:
            log.warning("actuator: commands wait beyond offset %d; reading again", offset)
            await self.app.consumer.seek(TP(self.commands.get_topic_name(), 0), offset)

    def forget(self) -> None:
        """The partitions were revoked: what this process carried out no longer counts."""
        self.done = self.in_hand = None
        self.guard.forget()

    def stalled(self, now: float) -> int | None:
        """Where to seek the commands topic when commands wait beyond the last one carried
        out but none arrived for a while: around a restart or rebalance Faust can drop
        messages it had fetched (faust-streaming #596), and with no later command nothing
        reveals the gap, so a rollback would wait for the next restart. A command read
        twice is refused as a replay and recorded, never run twice."""
        tp = TP(self.commands.get_topic_name(), 0)
        consumer = self.app.consumer
        if self.app.rebalancing:  # Faust seeks to the committed offsets when it is done
            return None
        if self.in_hand is not None:  # held while Redis is away: nothing is lost
            return None
        try:
            if tp not in consumer.assignment():
                return None
            end = consumer.highwater(tp)
        except ConsumerNotStarted:
            return None
        # Faust's own record of the offset it sought to after the assignment.
        committed = getattr(consumer, "_committed_offset", {}).get(tp)
        done = last_carried_out(self.done, committed)
        return self.guard.stalled(0, done, end, now)

    def receipt_of(self, message: faust.types.Message) -> float:
        """When the broker received a commands-topic message (its append time), or, on a
        topic that keeps the producer's time (prepare_topics warns of it), when this
        process first read it."""
        return receipt(self.actuator.clock(), message.timestamp, message.timestamp_type)

    async def actuate(self, key: bytes | None, value: bytes | None,
                      received_at: float) -> None:
        """Execute one message of the commands topic, ``received_at`` (its
        :func:`~rollguard.actions.receipt.receipt`); send its alerts and audit records. While
        Redis is away the message is retried with that time, so its expiry is judged as of its
        receipt; the operator is alerted once that it waits."""

        async def alert_waiting(exc: ServiceUnavailable) -> None:
            notice = self.actuator.waiting_alert(value, received_at, str(exc))
            await self.report(key, [notice], [notice])

        out = await until_available("actuator",
                                    lambda: self.actuator.handle(value, received_at),
                                    alert_waiting)
        for record in out.outcomes:
            self.pointers.invalidate(record["service"])
        self.metrics.on_actuated(out.audit)
        await self.report(key, out.alerts, out.audit)

    async def report(self, key: bytes | None, alerts: list[bytes], audit: list[bytes],
                     ) -> None:
        """Hand alerts, then audit records, to the producer (sent in that order)."""
        for value in alerts:
            await self.alerts.send(key=key, value=value)
        for value in audit:
            await self.audit.send(key=key, value=value)
