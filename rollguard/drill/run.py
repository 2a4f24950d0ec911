"""One drill against the live deployment: the drill service's stable release alone, its
traffic sent through the real events topic, a canary promoted, the rollback, the flip, a
reader's switch and the notification timed; afterwards its pointer is the stable release
alone again, whatever happened, so the next drill starts from there.

Everything the drill writes is its own service's: its pointer, releases, history and drill
record in Redis (``ROLLGUARD_NAMESPACE``) and its events, keyed by its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

import orjson
from aiokafka.errors import KafkaError

from rollguard.actions.connect import async_redis_client
from rollguard.actions.drills import DrillRecord, DrillRecords
from rollguard.actions.pointer import PointerStore
from rollguard.actions.pointer_cache import TTL_S
from rollguard.actions.reader import PointerReader
from rollguard.base.errors import ConfigError, RollguardError, UnknownService
from rollguard.detectors.names import DRILL_PREFIX
from rollguard.detectors.policy import Policy
from rollguard.drill import NOTIFY_METRICS_URL
from rollguard.drill.timeline import Bounds, Failed, Hop, Seen, Skipped, Verdict, judge
from rollguard.drill.traffic import STABLE, Batch, Plan, Shape, batches, components, make_plan
from rollguard.drill.watch import Watch, follow_notifier, follow_topics
from rollguard.streams.connect import partition_counts, producer, tail
from rollguard.streams.settings import WorkerSettings

# The worker renews its copy of a pointer every TTL_S: a promote reaches its monitor within
# about twice that, and the candidate's events must not arrive before.
PROPAGATION_S = 2 * TTL_S + 0.5
# The stable's traffic is read before the canary is promoted (a consumer's fetch waits up to
# 0.5 s): a worker that read the drill's pointer only after the promote would date the
# canary from the service's last drill, hours back perhaps, and call it inconclusive at once.
WARMUP_READ_S = 1.0
TIDY_S = 10.0  # the longest the drill spends putting its pointer back
CLAIM_S = 600.0  # a drill holds its service this long beyond twice its span, if it dies


@dataclass(frozen=True)
class DrillSettings:
    worker: WorkerSettings  # topics, Kafka, Redis, the deployment's secret
    service: str = DRILL_PREFIX
    shape: Shape = field(default_factory=Shape)
    bounds: Bounds = field(default_factory=Bounds)
    notify_url: str | None = NOTIFY_METRICS_URL  # the notifier's /metrics; None: not checked
    by: str = "rollguard-drill"  # who the drill's own pointer changes are recorded as


@dataclass(frozen=True)
class Result:
    verdict: Verdict
    plan: Plan | None
    started_at: float  # wall clock
    ended_at: float


async def run_drill(settings: DrillSettings, policy: Policy) -> Result:
    """Run one drill; its verdict names the first hop that failed or was too slow."""
    started, t0 = time.time(), time.monotonic()
    watch = Watch(lambda: time.monotonic() - t0)
    client = async_redis_client(settings.worker.redis_url)
    store = PointerStore(client, settings.worker.secret)
    books = DrillRecords(client)
    record, bounds, token, claimed = DrillRecord(), settings.bounds, uuid.uuid4().hex, False
    try:
        record = await books.read(settings.service)
        watch.plan = make_plan(policy, settings.service, record.number + 1, time.time(),
                               record.events_until, settings.shape)
        bounds = replace(bounds, decision_event_s=watch.plan.expected_s)
        claimed = await books.claim(settings.service, token, CLAIM_S + 2 * (
            watch.plan.until - watch.plan.start))
        if not claimed:
            raise ConfigError(f"another drill of {settings.service} is under way: drills of "
                              "one service run one at a time")
        # Written before any event leaves: the next drill begins after these, even if this
        # one is stopped half-way.
        record = replace(record, number=watch.plan.number, events_until=watch.plan.until)
        await books.write(settings.service, record)
        await _rehearse(settings, store, watch.plan, watch, bounds)
    except (RollguardError, KafkaError) as exc:
        watch.fail_first(f"the drill could not go on: {exc}")
    finally:
        if claimed:  # (never another drill's canary)
            await _tidy(store, books, settings, token)
        verdict = judge(watch.observed, bounds)
        result = Result(verdict, watch.plan, started, time.time())
        if claimed:
            with contextlib.suppress(RollguardError):
                await books.write(settings.service, remembered(record, result))
        await client.aclose()
    return result


async def _tidy(store: PointerStore, books: DrillRecords, settings: DrillSettings,
                token: str) -> None:
    """The pointer back to the stable alone, and the service free for the next drill."""
    with contextlib.suppress(RollguardError, TimeoutError):
        await asyncio.wait_for(settle(store, settings, "the drill is over"), TIDY_S)
    with contextlib.suppress(RollguardError):
        await books.release(settings.service, token)


def remembered(record: DrillRecord, result: Result) -> DrillRecord:
    """The drill record after ``result``."""
    verdict, failed = result.verdict, result.verdict.failed
    if verdict.passed:
        text = "passed"
    elif failed is not None:
        text = f"failed at {failed.hop.value}: {failed.note}"
    else:
        text = "did not finish"
    return replace(record, last_run_at=result.ended_at, last_result=text[:500],
                   last_success_at=result.ended_at if verdict.passed else record.last_success_at)


async def settle(store: PointerStore, settings: DrillSettings, why: str) -> None:
    """The drill service's stable release alone, active and stable: promoted on the first
    drill, and a canary left behind (by this drill, or one that did not finish) rolled back."""
    service, by = settings.service, settings.by
    try:
        state = await store.read(service)
    except UnknownService:
        await store.register_release(service, STABLE, components(STABLE))
        (await store.issue(service, "promote", by, release=STABLE,
                           reason=f"drill: {why}")).raise_for_status()
        return
    if (state.active, state.stable, state.candidate) != (STABLE, STABLE, None):
        (await store.issue(service, "rollback", by, release=STABLE, force=True,
                           reason=f"drill: {why}")).raise_for_status()


async def _rehearse(settings: DrillSettings, store: PointerStore, plan: Plan, watch: Watch,
                    bounds: Bounds) -> None:
    worker = settings.worker
    await settle(store, settings, "the stable release alone before the drill")
    await store.register_release(plan.service, plan.candidate, components(plan.candidate))
    async with (tail(worker.topic_audit, worker.topic_commands,
                     bootstrap=worker.kafka_bootstrap) as topics,
                PointerReader(store.client, plan.service, on_change=watch.on_pointer),
                _following(follow_topics(topics, worker.topic_commands, watch),
                           follow_notifier(settings.notify_url, watch)
                           if settings.notify_url else None)):
        groups = batches(plan)
        warm, slow = await _send(worker, plan, [b for b in groups if not b.canary], watch)
        await asyncio.sleep(WARMUP_READ_S)
        asked = watch.clock()
        outcome = (await store.issue(
            plan.service, "promote", settings.by, release=plan.candidate,
            percent=plan.shape.percent, reason=f"drill {plan.number}: a rehearsal of the guard "
            f"({plan.rule.name} {plan.shape.shift:g}x its tolerance)")).raise_for_status()
        watch.promoted_epoch = outcome.epoch_after
        watch.see(Hop.PROMOTE, Seen(watch.clock(), f"{plan.candidate} on "
                                    f"{plan.shape.percent:g}% (epoch {outcome.epoch_before} "
                                    f"→ {outcome.epoch_after})", took=watch.clock() - asked))
        await asyncio.sleep(PROPAGATION_S)
        sent, slowest = await _send(worker, plan, [b for b in groups if b.canary], watch)
        watch.see(Hop.EVENTS, Seen(watch.clock(), f"{warm + sent:,} events on "
                                   f"{worker.topic_events}", took=max(slow, slowest)))
        if settings.notify_url is None:
            watch.see(Hop.NOTIFY, Skipped("not checked (--no-notify)"))
        await _await_hops(settings, plan, watch, bounds)


@contextlib.asynccontextmanager
async def _following(*work: Awaitable[None] | None) -> AsyncIterator[None]:
    tasks = [asyncio.ensure_future(w) for w in work if w is not None]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _send(worker: WorkerSettings, plan: Plan, groups: list[Batch], watch: Watch,
                ) -> tuple[int, float]:
    """Send each batch once the clock reaches it, until the rollback is decided: how many
    events went, and the broker's slowest acknowledgement."""
    topic, slowest, sent = worker.topic_events, 0.0, 0
    try:
        if not (await partition_counts([topic], worker.kafka_bootstrap)).get(topic):
            raise ConfigError(f"no events topic {topic!r} at {worker.kafka_bootstrap} "
                              "(ROLLGUARD_TOPIC_EVENTS)")
        async with producer(worker.kafka_bootstrap, linger_ms=0) as out:
            for batch in groups:
                if Hop.DECISION in watch.observed:
                    break  # decided: what is left would only wait for the clock
                await asyncio.sleep(max(0.0, batch.ready_at - time.time()))
                began = time.monotonic()
                await out.send_and_wait(topic, orjson.dumps(batch.events),
                                        key=plan.service.encode())
                slowest = max(slowest, time.monotonic() - began)
                sent += len(batch.events)
    except (RollguardError, KafkaError) as exc:
        watch.see(Hop.EVENTS, Failed(f"the broker did not take the events: {exc}"))
        raise
    return sent, slowest


async def _await_hops(settings: DrillSettings, plan: Plan, watch: Watch,
                      bounds: Bounds) -> None:
    """Wait for each hop after the events, as long as its patience allows."""
    for hop in (Hop.DECISION, Hop.COMMAND, Hop.FLIP, Hop.READER, Hop.NOTIFY):
        until = watch.deadline(hop, bounds.patience(hop))
        if until is None:
            continue  # the hop it follows did not happen: not reached
        if not await watch.wait_for(hop, until):
            watch.see(hop, Failed(_missing(hop, settings, plan, watch, bounds.patience(hop))))


def _missing(hop: Hop, settings: DrillSettings, plan: Plan, watch: Watch,
             waited: float) -> str:
    """Why ``hop`` was not seen, and where to look."""
    worker, within = settings.worker, f"within {waited:g} s"
    return {
        Hop.DECISION: f"no rollback of {plan.candidate} on {worker.topic_audit} {within} of "
                      f"the last events: is a worker of group {worker.app_id} running and "
                      f"reading {worker.topic_events}?",
        Hop.COMMAND: f"no command {watch.command_id[:8]} on {worker.topic_commands} {within}",
        Hop.FLIP: f"no outcome of command {watch.command_id[:8]} on {worker.topic_audit} "
                  f"{within}: is the actuator running, and may its Redis user write the "
                  "pointer (docs/pointer-protocol.md, section 9)?",
        Hop.READER: f"a PointerReader of {plan.service} did not see the flip {within}",
        Hop.NOTIFY: f"{watch.notify_problem or 'nothing delivered'} {within} of the flip",
    }[hop]


async def last_success(settings: DrillSettings) -> float:
    """When the last drill of the service that passed ended (0: none yet), from its record:
    a scheduler that restarts carries on from there rather than from nothing."""
    client = async_redis_client(settings.worker.redis_url)
    try:
        return (await DrillRecords(client).read(settings.service)).last_success_at
    finally:
        await client.aclose()


async def drill_every(settings: DrillSettings, policy: Policy, every_s: float,
                      on_result: Callable[[Result], None]) -> None:
    """A drill every ``every_s`` seconds, for ever (a signal cancels it, and the drill under
    way puts its pointer back)."""
    while True:
        began = time.monotonic()
        on_result(await run_drill(settings, policy))
        await asyncio.sleep(max(0.0, every_s - (time.monotonic() - began)))
