"""End to end on the real broker and Redis: the OpenTelemetry Collector's topics in (keyless
messages of many services, both encodings), a regression expressed only through evaluation
results and spans rolled back once, a healthy candidate never; two workers on four
partitions; a worker killed mid-regression; bad records each a dead letter with its reason
and nothing else lost."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import random
import signal
from collections.abc import AsyncIterator

import orjson
import pytest

from rollguard.actions.pointer import PointerStore
from rollguard.demo.scenario import Scenario
from tests.support.e2e import (
    new_service,
    read_topic,
    rollback_count,
    scenario_events,
    setup_service,
    stop,
)
from tests.support.otlp import encode, evaluation, logs, protobuf_json
from tests.support.otlp_runs import (
    JUDGE,
    OTLP_ROLES,
    expected_ids,
    forwarded_ids,
    otlp_values,
    produce_live,
    produce_otlp,
)
from tests.support.runs import (
    IsolatedRun,
    committed_events,
    wait_members,
    wait_processed,
    wait_progress,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

REGRESSION = Scenario(rate=10.0, blip_s=0.0, duration=1200.0)
HEALTHY = dataclasses.replace(REGRESSION, regression_at=10**9)
QUICK_TAKEOVER = {"ROLLGUARD_SESSION_TIMEOUT_S": "6"}


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("otlp", partitions=2)
    yield run
    await run.delete_topics()


async def two_services(run: IsolatedRun) -> tuple[PointerStore, str, str, list[dict]]:
    """A regressing and a healthy service, both canaries; their events in time order."""
    bad, good = new_service(), new_service()
    store = await setup_service(run, bad, canary_percent=50)
    await setup_service(run, good, canary_percent=50)
    events = scenario_events(bad, REGRESSION) + scenario_events(good, HEALTHY, seed=11)
    return store, bad, good, events


def bad_messages(encoding: str, service: str) -> tuple[list[bytes], collections.Counter[str]]:
    """A malformed message, records with no release, an oversized record: the dead letters
    they must give."""
    no_release = evaluation(label="fail")  # a separate evaluator, no ids to join by
    oversized = evaluation(label="pass")
    oversized.attributes.extend(oversized.attributes[:1] * 200)
    mixed = logs((JUDGE, [no_release, no_release]),
                 ({"service.name": service, "rollguard.release": "v2"}, [oversized]))
    values = [encode(mixed, encoding)]
    want = collections.Counter(release_unknown=2, too_many_attributes=1)
    if encoding == "otlp_proto":
        values.append(b"\x0a\xff\xff\xff not a request")
        want["bad_otlp"] += 1
    else:  # protobuf's own JSON (base64 ids) is not OTLP JSON; and text that is no JSON
        base64 = logs((JUDGE, [evaluation(label="fail", trace="ab" * 16,
                                                   span="cd" * 8)] * 3))
        values += [orjson.dumps(protobuf_json(base64)), b"{not json"]
        want.update(bad_trace_id=3, not_json=1)
    return values, want


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
async def test_a_regression_seen_only_through_otlp_rolls_back_once_and_bad_records_dead_letter(
    run: IsolatedRun, encoding: str,
) -> None:
    """Spans and separate evaluators' results (joined to their spans), two services mixed in
    keyless messages of 300 records: the regressing canary is rolled back once, the healthy
    one never; each bad record is one dead letter with its reason, every other event is
    forwarded to its service's partition and judged."""
    store, bad, good, events = await two_services(run)
    epoch = (await store.read(good)).epoch
    values = otlp_values(events, encoding)
    junk, want = bad_messages(encoding, bad)
    values["logs"][3:3] = junk
    worker = run.start_worker(None, ROLLGUARD_OTLP_ENCODING=encoding)
    try:
        await produce_live(run, values)
        await wait_processed(run, roles=OTLP_ROLES)
    finally:
        stop(worker)
    assert await rollback_count(store, bad) == 1 and (await store.read(bad)).candidate is None
    assert await rollback_count(store, good) == 0 and (await store.read(good)).epoch == epoch
    dead = collections.Counter(d["reason"] for d in await read_topic(run.topic("dead")))
    assert dead == want
    assert set(await forwarded_ids(run)) == expected_ids(values, encoding)


async def test_keyless_batches_of_many_services_on_two_workers_and_four_partitions() -> None:
    """Messages with no key, each mixing six services, spread over four partitions read by
    two workers: each service judged on the partition that owns it; the one regression
    rolled back once, the five healthy canaries never."""
    run = IsolatedRun.new("otlp-two", partitions=4)
    try:
        bad = new_service()
        store = await setup_service(run, bad, canary_percent=50)
        events = scenario_events(bad, REGRESSION)
        healthy = [new_service() for _ in range(5)]
        for seed, service in enumerate(healthy):
            await setup_service(run, service, canary_percent=50)
            events += scenario_events(service, HEALTHY, seed=20 + seed)
        values = otlp_values(events, "otlp_proto", joined=False, spans=False)
        first = run.start_member("a")
        second = run.start_member("b")
        try:
            await wait_members(run, 2, run.topic("otlp_logs"))
            await produce_live(run, values)
            await wait_processed(run, roles=OTLP_ROLES)
        finally:
            stop(first)
            stop(second)
        assert await rollback_count(store, bad) == 1
        for service in healthy:
            assert await rollback_count(store, service) == 0
        assert not await read_topic(run.topic("dead"))
        await store.client.aclose()
    finally:
        await run.delete_topics()


async def test_a_worker_killed_mid_regression_still_rolls_back_exactly_once(
    run: IsolatedRun,
) -> None:
    """SIGKILL at random moments while OTLP messages of a regression flow (forwards sent,
    acknowledgements not yet committed): after restarts, one rollback, none doubled."""
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    values = otlp_values(scenario_events(service, REGRESSION), "otlp_proto", joined=False)
    moments = random.Random(5)
    logs_values, spans_values = values["logs"], values["traces"]
    pieces = 4
    step = len(logs_values) // (pieces + 1)
    for piece in range(pieces):
        done = await committed_events(run, "otlp_logs")
        worker = run.start_worker(None, **QUICK_TAKEOVER)
        try:
            part = slice(piece * step, (piece + 1) * step)
            await produce_otlp(run, {"logs": logs_values[part], "traces": spans_values[part]})
            await wait_progress(run, done, role="otlp_logs")
            await asyncio.sleep(moments.uniform(0.0, 1.0))
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
    worker = run.start_worker()
    try:
        rest = slice(pieces * step, None)
        await produce_otlp(run, {"logs": logs_values[rest], "traces": spans_values[rest]})
        await wait_processed(run, roles=OTLP_ROLES)
    finally:
        stop(worker)
    assert await rollback_count(store, service) == 1
    assert (await store.read(service)).candidate is None
