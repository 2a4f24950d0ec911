"""The worker's commands side: the commands topic read into
:class:`rollguard.actions.actuator.Actuator`, which executes each command against the Redis
pointer, and read again where Faust dropped messages it had fetched (around a restart or
rebalance, faust-streaming #596).

Each command is carried out once, in the order of its offset: a gap guard
(:mod:`rollguard.streams.gaps`) admits each message against the last command carried out
(:func:`last_carried_out`). A command after missing ones makes the actuator seek back to the
first missing one and is skipped until it comes again; one at or below the last carried out
is a redelivery and skipped (a command read again after a restart, whose outcome the
committed offset did not record yet, is refused by the pointer store as a replay: its id is
spent). A message is acknowledged only once carried out (or skipped as a redelivery), never
while it waits to come again: Faust commits over a single missing offset, so acknowledging a
skipped command would let the committed offset pass the missing one, and a restart would
never read it. (Faust's own bookkeeping of offsets it saw skipped can still commit ahead
after a seek back: a limit, see docs/design.md, "Recovery".)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import cast

import faust
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from rollguard.actions.actuator import Actuator
from rollguard.actions.pointer_cache import PointerCache
from rollguard.actions.receipt import receipt
from rollguard.base.errors import ServiceUnavailable
from rollguard.streams.gaps import Admit, GapGuard
from rollguard.streams.metrics import WorkerMetrics
from rollguard.streams.offsets import log_starts, seek
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
    and the alerts and audit records its outcomes send. ``monotonic`` is the clock of the
    gap guard's retries (the timer passes the same clock's time to :meth:`reread`)."""

    def __init__(self, app: faust.App, commands: faust.TopicT, actuator: Actuator,
                 pointers: PointerCache, metrics: WorkerMetrics, alerts: faust.TopicT,
                 audit: faust.TopicT, monotonic: Callable[[], float] = time.monotonic,
                 ) -> None:
        self.app = app
        self.commands = commands
        self.actuator = actuator
        self.pointers = pointers
        self.metrics = metrics
        self.alerts = alerts
        self.audit = audit
        self.monotonic = monotonic
        self.tp = TP(commands.get_topic_name(), 0)  # the topic's one partition
        self.guard = GapGuard(where=lambda partition: (self.tp.topic, partition))
        self.guard.accepted[self.tp.topic] = 0
        self.done: int | None = None  # the last commands offset carried out here
        self.in_hand: int | None = None  # the one being carried out (Redis may be away)

    async def read(self, stream: faust.StreamT[bytes]) -> None:
        """Carry out each message of the commands topic once, in order (see the module
        docstring), acknowledging it when it is carried out."""
        manual = cast(faust.Stream[bytes], stream).noack()
        async for event in manual.events():
            offset = event.message.offset
            verdict = await self.admit(offset)
            if verdict.process:
                self.in_hand = offset
                try:
                    await self.actuate(event.key, event.value, self.receipt_of(event.message))
                finally:
                    self.in_hand = None
                self.done = offset
            if not verdict.later:
                await manual.ack(event)

    async def admit(self, offset: int) -> Admit:
        """Whether to carry out the command at ``offset`` now; seek back first to commands
        missing before it."""
        verdict = self.guard.admit(0, offset, self.last_done(), self.monotonic())
        if verdict.seek_to is not None:
            log.warning("actuator: commands of %s missing before offset %d; reading again "
                        "from %d", self.tp.topic, offset, verdict.seek_to)
            await seek(self.app.consumer, self.tp, verdict.seek_to)
        return verdict

    def last_done(self) -> int:
        """The last offset carried out, by this process or, before its first, by the group
        (:func:`last_carried_out`)."""
        # Faust's own record of the offset it sought to after the assignment.
        committed = getattr(self.app.consumer, "_committed_offset", {}).get(self.tp)
        return last_carried_out(self.done, committed)

    async def reread(self, now: float) -> None:
        """Seek back to the commands that wait: again where a seek back lost the race to
        messages already fetched (or, below the log start, go on from it), and where
        :meth:`stalled` finds some."""
        if self.app.rebalancing:  # Faust seeks to the committed offsets when it is done
            return
        starts = {}
        if self.guard.retrying(now):
            found = await log_starts(self.app.consumer, [self.tp])
            starts = {0: found[self.tp]} if self.tp in found else {}
        for _, again in self.guard.due(now, starts):
            await seek(self.app.consumer, self.tp, again)
        stalled = self.stalled(now)
        if stalled is not None:
            log.warning("actuator: commands wait beyond offset %d; reading again", stalled)
            await seek(self.app.consumer, self.tp, stalled)

    def forget(self) -> None:
        """The partitions were revoked: what this process carried out no longer counts."""
        self.done = self.in_hand = None
        self.guard.forget()

    def stalled(self, now: float) -> int | None:
        """Where to seek the commands topic when commands wait beyond the last one carried
        out but none arrived for a while: around a restart or rebalance Faust can drop
        messages it had fetched (faust-streaming #596), and with no later command nothing
        reveals the gap, so a rollback would wait for the next restart."""
        consumer = self.app.consumer
        if self.app.rebalancing:  # Faust seeks to the committed offsets when it is done
            return None
        if self.in_hand is not None:  # held while Redis is away: nothing is lost
            return None
        try:
            if self.tp not in consumer.assignment():
                return None
            end = consumer.highwater(self.tp)
        except ConsumerNotStarted:
            return None
        return self.guard.stalled(0, self.last_done(), end, now)

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
