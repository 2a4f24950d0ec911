"""End to end on the real broker and Redis: evaluation results that come many minutes of
event time after their outputs' spans still roll a regression back, and the spans' own
metrics decide before any evaluation came (the evaluation lane, detectors/lanes.py)."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from rollguard.demo.scenario import Scenario
from tests.support.e2e import (
    new_service,
    read_topic,
    rollback_count,
    scenario_events,
    setup_service,
    stop,
)
from tests.support.otlp_runs import OTLP_ROLES, otlp_values, produce_live
from tests.support.policies import default_policy_document
from tests.support.runs import IsolatedRun, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

HALLUCINATING = Scenario(rate=10.0, blip_s=0.0, duration=1200.0)
SLOWER = dataclasses.replace(HALLUCINATING, hallucination_jump=0.0, latency_factor=1.8)
HEALTHY = dataclasses.replace(HALLUCINATING, regression_at=10**9)


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("otlp-lanes", partitions=2)
    yield run
    await run.delete_topics()


def one_clock_policy(folder: Path) -> str:
    """The default policy with no evaluation lane: every metric on the service's clock."""
    document = default_policy_document()
    document["opentelemetry"] = {"evaluation_metrics": []}
    path = folder / "one-clock.yaml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


@pytest.mark.parametrize("lanes", [True, False], ids=["evaluation-lane", "one-clock"])
async def test_evaluations_twenty_minutes_behind_their_spans_still_roll_back(
        run: IsolatedRun, tmp_path: Path, lanes: bool) -> None:
    """Three canaries' spans, all 20 minutes of them, first; only then the judges' results
    (naming only the outputs' spans). The latency regression is rolled back on the spans
    alone, before any evaluation came; the regression seen only in the evaluations, up to
    20 minutes behind the spans' time, is rolled back once they come; the healthy canary
    never; no event is too late. On one clock (the control) the same results are all too
    late and that regression is never rolled back."""
    bad, slow, good = new_service(), new_service(), new_service()
    store = await setup_service(run, bad, canary_percent=50)
    for service in (slow, good):
        await setup_service(run, service, canary_percent=50)
    events = (scenario_events(bad, HALLUCINATING) + scenario_events(slow, SLOWER, seed=8)
              + scenario_events(good, HEALTHY, seed=11))
    values = otlp_values(events, "otlp_proto")
    epoch = (await store.read(good)).epoch
    policy = {} if lanes else {"ROLLGUARD_POLICY": one_clock_policy(tmp_path)}
    worker = run.start_worker(None, **policy)
    try:
        await produce_live(run, {"traces": values["traces"]}, rounds=4)
        await wait_processed(run, roles=OTLP_ROLES)
        assert await rollback_count(store, slow) == 1, "the spans alone roll the latency back"
        assert await rollback_count(store, bad) == 0, "no evaluation has come yet"
        await produce_live(run, {"logs": values["logs"]}, rounds=4)
        await wait_processed(run, roles=OTLP_ROLES)
    finally:
        stop(worker)
    assert await rollback_count(store, slow) == 1
    assert await rollback_count(store, good) == 0 and (await store.read(good)).epoch == epoch
    dead = collections.Counter(d["reason"] for d in await read_topic(run.topic("dead")))
    if lanes:
        assert await rollback_count(store, bad) == 1 and (await store.read(bad)).candidate is None
        assert dead == collections.Counter()
    else:
        assert await rollback_count(store, bad) == 0
        assert set(dead) == {"too_late"} and dead["too_late"] > 10_000
