"""Several workers in one consumer group, end to end on the real broker and Redis: they share
the partitions, one is killed in the middle of a regression, another joins later, and every
regressed service is still rolled back exactly once, judged on all the evidence it had."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from rollguard.actions.commands import Command, new_command, sign
from rollguard.analysis.replay import replay_events
from rollguard.detectors.decision import Decision
from rollguard.detectors.events import validate_event
from rollguard.detectors.policy import default_policy
from rollguard.streams.app import owner_of
from tests.support.e2e import (
    QUICK_TAKEOVER,
    REGRESSION,
    T0,
    applied_rollbacks,
    new_service,
    produce,
    read_topic,
    scenario_events,
    send_commands,
    setup_service,
    stop,
    wait_for_audit,
)
from tests.support.runs import IsolatedRun, wait_members, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

PARTITIONS = 4
# Decisions come 160-190 s of event time after the onset (540 s): nothing after 900 s counts.
SCALE = dataclasses.replace(REGRESSION, duration=900.0)
KILL_AT = T0 + 600.0  # event time the first worker is killed at: mid-regression, undecided
JOIN_AT = T0 + 660.0  # event time a third worker joins at


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("e2e-scale", partitions=PARTITIONS)
    yield run
    await run.delete_topics()


def one_service_per_partition() -> list[str]:
    """New service names whose keys land on distinct partitions, one on each."""
    owner, named = owner_of(PARTITIONS), dict[int, str]()
    while len(named) < PARTITIONS:
        service = new_service()
        named.setdefault(owner(service.encode()), service)
    return [named[p] for p in range(PARTITIONS)]


def first_rollback(events: list[dict[str, Any]]) -> Decision | None:
    """The first rollback one monitor fed ``events`` from scratch decides (as replay does)."""
    decisions = replay_events(map(validate_event, events), default_policy())
    return next((d for d in decisions if d.action == "rollback"), None)


def between(events: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [e for e in events if start <= e["ts"] < end]


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


async def test_workers_sharing_partitions_roll_back_each_service_once_through_a_kill_and_a_join(
    run: IsolatedRun,
) -> None:
    """Four services on four partitions regress for good while two workers of one group
    share them. One worker is SIGKILLed mid-regression while events flow; the other takes
    its partitions over; a third joins later. Each service is rolled back exactly once, at
    the event time an uninterrupted monitor decides at, with evidence that began before the
    kill: the moved services' judgement went on from their checkpoints, not from zero (a
    monitor started at the kill decides later, or not at all)."""
    services = one_service_per_partition()
    stores = {s: await setup_service(run, s, canary_percent=50) for s in services}
    events = {s: scenario_events(s, SCALE, seed=7 + i) for i, s in enumerate(services)}
    expected = {s: first_rollback(e) for s, e in events.items()}
    from_zero = {s: first_rollback(between(e, KILL_AT, float("inf"))) for s, e in events.items()}

    def part(start: float, end: float) -> list[dict[str, Any]]:
        return list(itertools.chain.from_iterable(between(e, start, end)
                                                  for e in events.values()))

    first, second = run.start_member("a", **QUICK_TAKEOVER), run.start_member("b")
    workers = [first, second]
    try:
        before = await wait_members(run, 2, run.topic("events"))
        await produce(run, part(0.0, KILL_AT))
        await wait_processed(run)
        assert [(await store.read(s)).candidate for s, store in stores.items()] == ["v2"] * 4
        await produce(run, part(KILL_AT, KILL_AT + 20.0))
        kill(first)  # while the last events flow: some judged, none checkpointed maybe
        await produce(run, part(KILL_AT + 20.0, JOIN_AT))
        [survivor] = await wait_members(run, 1, run.topic("events"))
        await wait_processed(run)  # the survivor judged what the killed worker held
        workers.append(run.start_member("c"))
        await produce(run, part(JOIN_AT, float("inf")))
        await wait_members(run, 2, run.topic("events"))
        await wait_for_audit(run, lambda rs: {r["service"] for r in applied(rs)} == set(services),
                             timeout=120.0)
        await wait_processed(run)
    finally:
        for worker in workers:
            stop(worker)
    audit = await read_topic(run.topic("audit"))
    moved = {p for member, held in before.items() if member != survivor for p in held}
    assert moved and moved != set(range(PARTITIONS)), before
    per_service = collections.Counter(r["service"] for r in applied(audit))
    assert per_service == dict.fromkeys(services, 1)
    for service, store in stores.items():
        assert len(applied_rollbacks(await store.history(service, count=200))) == 1, service
        assert (await store.read(service)).candidate is None
        await store.client.aclose()
    for service in services:
        decided = [r for r in audit if r.get("type") == "decision"
                   and r["service"] == service and r["action"] == "rollback"]
        want, fresh = expected[service], from_zero[service]
        assert want is not None and decided, service
        assert {r["ts"] for r in decided} == {want.ts}, (service, decided)
        assert decided[0]["evidence"]["since"] < KILL_AT, decided[0]
        assert fresh is None or fresh.ts > want.ts, "a restart from zero would decide as soon"


async def test_a_command_read_while_several_workers_run_flips_the_pointer_once(
    run: IsolatedRun,
) -> None:
    """Two workers of one group, one rollback command sent twice (a redelivery) and the same
    decision signed again under a new id (a second worker repeating it); the worker that
    carries them out is SIGKILLed as soon as the pointer flipped, so the other may read the
    commands again from an offset committed before. The pointer flips once: one applied
    outcome; every other reading is a replay refused or already applied."""
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    before = await store.read(service)
    decided = new_command(service, "rollback", "rule:hallucination", time.time(),
                          idempotency_key=f"{service}:v2@{before.watched_since}:rollback:*",
                          release="v1", reason="worse", expected_epoch=before.epoch)
    again = dataclasses.replace(decided, command_id=uuid.uuid4().hex)
    signed = [sign(c, run.secret.encode()) for c in (decided, decided, again)]
    first = run.start_member("a", **QUICK_TAKEOVER)
    workers = [first]
    try:
        [member_a] = await wait_members(run, 1, run.topic("commands"))
        workers.append(run.start_member("b", **QUICK_TAKEOVER))
        held = await wait_members(run, 2, run.topic("commands"))
        await send_commands(run, [on_topic(c) for c in signed], service)
        await wait_for_audit(run, lambda rs: bool(applied(rs)))
        actuator = first if held[member_a] else workers[1]
        kill(actuator)
        await wait_members(run, 1, run.topic("commands"))
        await wait_processed(run, roles=("commands",))
    finally:
        for worker in workers:
            stop(worker)
    audit = await read_topic(run.topic("audit"))
    ids = {c.command_id for c in signed}
    outcomes = [r for r in audit if r.get("type") == "outcome" and r["command_id"] in ids]
    assert len(applied(outcomes)) == 1, outcomes
    assert {r["command_id"] for r in outcomes} == ids, "a command was never read"
    others = {(r["status"], r["code"]) for r in outcomes if r["status"] != "applied"}
    assert others <= {("refused", "replayed"), ("already_applied", "duplicate")}, others
    history = await store.history(service, count=100)
    assert len(applied_rollbacks(history)) == 1
    after = await store.read(service)
    assert (after.epoch, after.candidate) == (before.epoch + 1, None)
    await store.client.aclose()


def on_topic(command: Command) -> bytes:
    return orjson.dumps({"type": "command", "approval": None, "command": command.as_dict()})


def applied(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("type") == "outcome" and r["status"] == "applied"]
