"""The notifier's Kafka edge: read the alerts and audit topics with its own consumer group,
group what they say into episodes, and hand each destination its messages.

Delivery is at most once per record across a restart: offsets are committed as records are
read and queued messages live in memory, so a notifier killed with a backlog loses it (the
audit topic and ``rollguard history`` still hold everything). A new consumer group starts at
the end of the topics, so a first start does not page for last month's rollbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import orjson

from rollguard.notify.deliver import Destination, Sender, destinations
from rollguard.notify.episodes import Batcher, EpisodeBook
from rollguard.notify.metrics import VARIABLE as METRICS_VARIABLE
from rollguard.notify.metrics import NotifyMetrics
from rollguard.notify.notices import read_record
from rollguard.notify.outbox import OutboxStats
from rollguard.notify.settings import NotifySettings, Redactor
from rollguard.streams import metrics_http
from rollguard.streams.connect import consumer

log = logging.getLogger("rollguard.notify")
DRAIN_S = 5.0  # on stop, how long queued messages may still go out


class Notifier:
    """Records in, messages queued per destination out; pure apart from the clock."""

    def __init__(self, settings: NotifySettings, targets: list[Destination],
                 clock: Callable[[], float] = time.time) -> None:
        self.book = EpisodeBook(repeat_s=settings.repeat_s)
        self.batcher = Batcher(batch_s=settings.batch_s)
        self.targets, self.clock = targets, clock
        self.unreadable = 0

    def take(self, value: bytes | None) -> None:
        """One record of the alerts or audit topic."""
        try:
            record = orjson.loads(value or b"")
            update = self.book.add(read_record(record) if isinstance(record, dict) else None)
        except (orjson.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
            self.unreadable += 1
            log.warning("notify: skipped an unreadable record (%s: %s)", type(exc).__name__, exc)
            return
        if update is not None:
            self.batcher.add(update, self.clock())

    def flush(self, now: float) -> bool:
        """Queue the messages due by ``now``; True if any were."""
        messages = self.batcher.due(now)
        for message in messages:
            for target in self.targets:
                target.outbox.put(message, now)
        return bool(messages)

    def wait_s(self, now: float, longest: float = 0.5) -> float:
        due = self.batcher.next_due()
        return longest if due is None else min(longest, max(0.0, due - now))


async def run_notifier(settings: NotifySettings, stop: asyncio.Event,
                       from_beginning: bool = False) -> dict[str, OutboxStats]:
    """Notify until ``stop`` is set; return each destination's counters. With
    ``metrics_addr``, its counters are served at /metrics meanwhile."""
    targets = destinations(settings)
    notifier = Notifier(settings, targets)
    redactor = Redactor(settings.secrets())
    async with aiohttp.ClientSession() as session, _metrics(settings, notifier):
        senders = [Sender(t, session, redactor) for t in targets]
        tasks = [asyncio.create_task(s.run()) for s in senders]
        try:
            await _consume(settings, notifier, senders, stop, from_beginning)
            notifier.flush(float("inf"))
            await _drain(senders)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks)
    stats = {t.name: t.outbox.stats for t in targets}
    log.info("notify: stopped; %s", ", ".join(f"{n}: {s}" for n, s in stats.items()))
    return stats


async def _consume(settings: NotifySettings, notifier: Notifier, senders: list[Sender],
                   stop: asyncio.Event, from_beginning: bool) -> None:
    worker = settings.worker
    async with consumer(worker.topic_alerts, worker.topic_audit,
                        bootstrap=worker.kafka_bootstrap, group_id=settings.group,
                        auto_offset_reset="earliest" if from_beginning else "latest",
                        enable_auto_commit=True) as source:
        log.info("notify: reading %s and %s as group %s; posting to %s", worker.topic_alerts,
                 worker.topic_audit, settings.group, ", ".join(s.destination.name
                                                              for s in senders))
        while not stop.is_set():
            wait_ms = int(notifier.wait_s(notifier.clock()) * 1000)
            for records in (await source.getmany(timeout_ms=max(wait_ms, 10))).values():
                for record in records:
                    notifier.take(record.value)
            if notifier.flush(notifier.clock()):
                for sender in senders:
                    sender.wake.set()


@contextlib.asynccontextmanager
async def _metrics(settings: NotifySettings, notifier: Notifier) -> AsyncIterator[None]:
    if settings.metrics_addr is None:
        yield
        return
    sock = metrics_http.bind(settings.metrics_addr, METRICS_VARIABLE)
    metrics = NotifyMetrics({t.name: t.outbox for t in notifier.targets},
                            lambda: notifier.unreadable,
                            drills=[t.name for t in notifier.targets if not t.pages])
    runner = await metrics_http.serve(sock, metrics)
    log.info("notify: serving /metrics on %s:%d", *settings.metrics_addr)
    try:
        yield
    finally:
        await runner.cleanup()


async def _drain(senders: list[Sender]) -> None:
    for sender in senders:
        sender.wake.set()
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline and any(len(s.destination.outbox) for s in senders):
        await asyncio.sleep(0.05)
