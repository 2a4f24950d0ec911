"""End to end on the real broker and Redis: events in, a rollback decided, the pointer
flipped, a subscribed reader switched — and blips, crashes and bad input handled."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import random
import signal
import subprocess
import sys

import orjson
import pytest

from rollguard.actions.pointer import PointerStore
from rollguard.actions.reader import PointerReader
from tests.support.e2e import (
    BLIP_ONLY,
    QUICK_TAKEOVER,
    REGRESSION,
    applied_rollbacks,
    fixture_run,
    new_service,
    produce,
    read_topic,
    scenario_events,
    setup_service,
    start,
    stop,
)
from tests.support.runs import IsolatedRun, committed_events, wait_processed, wait_progress

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]
__all__ = ["fixture_run"]  # the isolated run of the end-to-end tests

KILLS = 10  # SIGKILLs of the worker during one regression (each costs ~8 s of restart)


async def finish_with_one_rollback(run: IsolatedRun, store: PointerStore, service: str,
                                   rest: list[dict]) -> None:
    """A last worker reads ``rest`` of the events: the service was rolled back exactly once."""
    worker = start(run)
    try:
        await produce(run, rest)
        await wait_processed(run)
    finally:
        stop(worker)
    assert len(applied_rollbacks(await store.history(service, count=200))) == 1
    assert (await store.read(service)).candidate is None


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
async def test_sustained_regression_is_rolled_back_once_and_a_reader_switches(
    run: IsolatedRun, event_loop: str,
) -> None:
    """A canary that regresses for good is rolled back exactly once; a reader sees it, on
    either event loop the worker may run (ROLLGUARD_EVENT_LOOP)."""
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    switched = asyncio.Event()
    reader = PointerReader(store.client, service,
                           on_change=lambda state: switched.set() if state.candidate is None
                           else None)
    await reader.start()
    worker = run.start_worker(None, ROLLGUARD_EVENT_LOOP=event_loop)
    try:
        await produce(run, scenario_events(service, REGRESSION))
        await asyncio.wait_for(switched.wait(), 90)
        await wait_processed(run)
    finally:
        stop(worker)
        await reader.stop()
    state = await store.read(service)
    assert state.active == "v1" and state.candidate is None
    assert len(applied_rollbacks(await store.history(service, count=100))) == 1
    audit = await read_topic(run.topic("audit"))
    decisions = [a for a in audit if a.get("type") == "decision" and a["action"] == "rollback"]
    outcomes = [a for a in audit if a.get("type") == "outcome" and a["status"] == "applied"]
    assert len(decisions) == 1 and len(outcomes) == 1
    assert decisions[0]["release"] == "v2" and decisions[0]["to"] == "v1"
    assert decisions[0]["ts"] >= REGRESSION.regression_at + 1_763_856_000.0


async def test_transient_spike_raises_an_alert_and_flips_nothing(run: IsolatedRun) -> None:
    """A short, large spike that recovers gives an alert, never a rollback."""
    service = new_service()
    spiky = dataclasses.replace(BLIP_ONLY, blip_at=400.0, blip_s=90.0)
    store = await setup_service(run, service, canary_percent=50)
    epoch = (await store.read(service)).epoch
    worker = start(run)
    try:
        await produce(run, scenario_events(service, spiky))
        await wait_processed(run)  # events checkpointed, and any command they caused carried out
    finally:
        stop(worker)
    alerts = await read_topic(run.topic("alerts"))
    assert any(a.get("verdict") == "transient" for a in alerts), alerts
    assert (await store.read(service)).epoch == epoch
    assert not [a for a in alerts if a.get("action") == "rollback"]


async def test_worker_killed_mid_regression_resumes_with_exactly_one_rollback(
    run: IsolatedRun,
) -> None:
    """SIGKILL in the middle of a sustained regression: after a restart, one rollback."""
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    events = scenario_events(service, REGRESSION)
    onset = next(i for i, e in enumerate(events)
                 if e["ts"] >= REGRESSION.regression_at + 1_763_856_000.0)
    cut = onset + (len(events) - onset) // 6  # well inside the regression, before a decision
    worker = start(run)
    try:
        await produce(run, events[:cut])
        await wait_processed(run)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    assert (await store.read(service)).candidate == "v2", "decided before the kill"
    await finish_with_one_rollback(run, store, service, events[cut:])


async def test_a_worker_killed_again_and_again_during_a_regression_still_rolls_back_once(
    run: IsolatedRun,
) -> None:
    """SIGKILL at KILLS random moments while the regression's events flow (some before the
    decision, some after): one rollback, none doubled, none missed. Each worker first shows
    it is up (it committed offsets beyond the last worker's), then is killed a random moment
    after the second half of its share was sent: mid-batch, before a checkpoint, or idle."""
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    events = scenario_events(service, REGRESSION)
    onset = next(i for i, e in enumerate(events)
                 if e["ts"] >= REGRESSION.regression_at + 1_763_856_000.0)
    step = (len(events) - onset) // (KILLS + 1)
    seed = int(os.environ.get("ROLLGUARD_TEST_SEED", random.randrange(2**32)))
    print(f"kill moments: ROLLGUARD_TEST_SEED={seed}")  # shown when the test fails
    moments = random.Random(seed)
    sent = 0
    for kill in range(KILLS):
        committed = await committed_events(run)
        worker = run.start_worker(None, **QUICK_TAKEOVER)
        try:
            half, upto = onset + kill * step + step // 2, onset + (kill + 1) * step
            await produce(run, events[sent:half])
            await wait_progress(run, committed)
            await produce(run, events[half:upto])
            sent = upto
            await asyncio.sleep(moments.uniform(0.0, 1.5))  # a random moment to kill at
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
    await finish_with_one_rollback(run, store, service, events[sent:])


async def test_invalid_events_go_to_dead_letters_and_change_no_decision() -> None:
    """Bad lines land in the dead-letter topic with reasons; the decision is the same."""
    outcomes = {}
    for dirty in (False, True):
        run = IsolatedRun.new("e2e-dirty" if dirty else "e2e-clean", partitions=2)
        service = "e2e-dirty-check-" + run.run_id
        store = await setup_service(run, service, canary_percent=50)
        events = scenario_events(service, REGRESSION)
        bad = [
            (service.encode(), b"{not json"),
            (service.encode(), orjson.dumps({"service": service, "release": "v2"})),
            (service.encode(), orjson.dumps([{"event_id": "x", "ts": "soon", "service": service,
                                              "release": "v2", "metrics": {}}])),
            (service.encode(), orjson.dumps({"event_id": "y", "ts": 1.0, "service": service,
                                             "release": "v2", "metrics": {"toxicity": 7}})),
            (service.encode(), orjson.dumps([{"service": service, "release": "v2",
                                              "event_id": ["b1", "b2"], "ts": [1.0],
                                              "metrics": {}}])),
            (service.encode(), orjson.dumps({"service": service, "release": "v2",
                                             "event_id": ["b3"], "ts": ["soon"],
                                             "metrics": {"error": [0]}})),
        ] * 10 if dirty else []
        worker = start(run)
        try:
            await produce(run, events, raw_lines=bad)
            await wait_processed(run)
        finally:
            stop(worker)
        audit = await read_topic(run.topic("audit"))
        rollback = [a for a in audit if a.get("type") == "decision" and a["action"] == "rollback"]
        outcomes[dirty] = [(r["ts"], r["verdict"], r["to"]) for r in rollback]
        if dirty:
            dead = await read_topic(run.topic("dead"))
            reasons = collections.Counter(d["reason"] for d in dead)
            assert sum(reasons.values()) == len(bad), reasons
            assert {"not_json", "bad_block", "bad_ts"} <= set(reasons)
        await store.client.aclose()
        await run.delete_topics()
    assert outcomes[True] == outcomes[False] and len(outcomes[False]) == 1


def test_worker_help_lists_its_environment_variables() -> None:
    """`rollguard worker --help` names every setting it reads."""
    result = subprocess.run(
        ["rollguard", "worker", "--help"], capture_output=True, text=True, check=True,
        env={**os.environ, "PATH": os.path.dirname(sys.executable) + ":" + os.environ["PATH"]},
    )
    for name in ("KAFKA_BOOTSTRAP", "REDIS_URL", "ROLLGUARD_POLICY", "ROLLGUARD_SECRET",
                 "ROLLGUARD_TOPIC_EVENTS", "ROLLGUARD_PARTITIONS"):
        assert name in result.stdout
