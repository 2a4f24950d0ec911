"""A fleet-wide shock end to end: cut-over services spread over two workers share one shock
of their error rate; the workers share their moves on the fleet topic, so no candidate is
rolled back and the incident is alerted, as replay decides on the same events."""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.scenarios import CANDIDATE, START, cutover_fleet
from rollguard.analysis.replay import replay_events
from rollguard.detectors.events import validate_event
from rollguard.detectors.policy import default_policy
from tests.support.e2e import new_service, produce, read_topic, setup_service, stop
from tests.support.e2e import wait_for_audit as audit_until
from tests.support.runs import IsolatedRun, wait_members, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

SERVICES = 6


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("e2e-fleet", partitions=4)
    yield run
    await run.delete_topics()


def fleet_events(names: list[str]) -> tuple[list[dict[str, Any]], float]:
    """The events of a cutover fleet sharing an error shock, as wire dicts; the shock's start."""
    fleet = cutover_fleet(11, SERVICES, "error", 10.0, length=300.0, rate=3.0)
    rename = dict(zip((s.service for s in fleet), names, strict=True))
    merged = heapq.merge(*(s.events() for s in fleet), key=lambda e: e.ts)
    events = [{"event_id": f"{rename[e.service]}-{e.event_id}", "ts": e.ts,
               "service": rename[e.service], "release": "v2" if e.release == CANDIDATE else "v1",
               "metrics": e.metrics} for e in merged]
    return events, START + fleet[0].shocks[0].at


def fleet_verdicts(records: list[dict[str, Any]]) -> dict[str, str]:
    return {r["service"]: r["verdict"] for r in records if r.get("type") == "decision"
            and r.get("verdict") in ("fleet", "held")}


async def test_cutover_services_on_two_workers_sharing_a_shock_are_held_not_rolled_back(
        run: IsolatedRun) -> None:
    names = [new_service() for _ in range(SERVICES)]
    stores = [await setup_service(run, name, canary_percent=100) for name in names]
    events, shock_at = fleet_events(names)
    decisions = replay_events(map(validate_event, events), default_policy())
    assert not [d for d in decisions if d.action == "rollback"]
    assert len([d for d in decisions if d.verdict == "fleet"]) == 1
    workers = [run.start_member("a"), run.start_member("b")]
    try:
        await wait_members(run, 2, run.topic("events"))
        # Live services send as time goes by: up to the shock at once, then a minute of event
        # time at a time (each worker's clock runs with the fleet's, as in production).
        await produce(run, [e for e in events if e["ts"] < shock_at])
        for start in range(0, 900, 60):
            await wait_processed(run)
            await produce(run, [e for e in events
                                if shock_at + start <= e["ts"] < shock_at + start + 60])
        await produce(run, [e for e in events if e["ts"] >= shock_at + 900])
        records = await audit_until(
            run, lambda rs: len(fleet_verdicts(rs)) >= default_policy().fleet_min_services,
            timeout=120.0)
        await wait_processed(run)
    finally:
        for worker in workers:
            stop(worker)
    records = await read_topic(run.topic("audit"))
    assert not [r for r in records if r.get("type") == "decision" and r["action"] == "rollback"]
    verdicts = fleet_verdicts(records)
    assert 1 <= list(verdicts.values()).count("fleet") <= len(workers), verdicts
    alerts = [r for r in await read_topic(run.topic("alerts")) if r.get("verdict") == "fleet"]
    assert alerts and set(alerts[0]["evidence"]["fleet"]["services"]) <= set(names)
    for name, store in zip(names, stores, strict=True):
        assert (await store.read(name)).candidate == "v2"
        await store.client.aclose()
