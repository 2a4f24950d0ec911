"""Staged rollback end to end on the real broker and Redis: a sustained regression under a
staged policy cuts the canary to 10 %, then to 0 % (rolled back), each step once, in the
Redis history and on the audit topic; a regression that stops after the first cut gets the
canary its share back; a pinned service gets no step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.e2e import (
    BLIP_ONLY,
    REGRESSION,
    T0,
    fixture_run,
    new_service,
    produce,
    read_topic,
    scenario_events,
    setup_service,
    stop,
    wait_for_audit,
)
from tests.support.policies import default_policy_document
from tests.support.runs import IsolatedRun, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]
__all__ = ["fixture_run"]  # the run fixture, shared with the worker's end-to-end tests


def staged_policy(tmp_path: Path, **staging: Any) -> str:
    """The default policy with the demo's regressing metric staged: 10 %, then 0 % (and
    any other ``staging`` settings)."""
    raw = default_policy_document()
    raw["metrics"]["hallucination"].update(
        {"action": "staged", "steps": [10, 0], "step_seconds": 60, **staging})
    path = tmp_path / "staged.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def rule_moves(history: list[dict[str, Any]]) -> list[tuple[str, float | None, str]]:
    """(op, percent, outcome) of every rule's command in the history, oldest first."""
    return [(h["op"], h["command"]["percent"], h["outcome"]) for h in history
            if h.get("issued_by", "").startswith("rule:")]


def staged_decisions(audit: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    """The audit's decisions of the service that belong to a staged rollback."""
    return [a for a in audit if a.get("type") == "decision" and a.get("service") == service
            and "staged" in a.get("evidence", {})]


async def test_a_sustained_regression_is_cut_to_ten_percent_then_rolled_back(
        run: IsolatedRun, tmp_path: Path) -> None:
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    worker = run.start_worker(ROLLGUARD_POLICY=staged_policy(tmp_path))
    try:
        await produce(run, scenario_events(service, REGRESSION))
        audit = await wait_for_audit(run, lambda found: len(applied(found, service)) >= 2,
                                     timeout=120)
        await wait_processed(run)
    finally:
        stop(worker)
    assert rule_moves(await store.history(service, count=100)) == [
        ("rollback", 10.0, "applied"), ("rollback", 0.0, "applied")]
    state = await store.read(service)
    assert state.active == "v1" and state.candidate is None
    decided = [(a["action"], a["evidence"]["staged"]["percent"])
               for a in staged_decisions(audit, service)]
    assert decided == [("stage", 10.0), ("rollback", 0.0)]
    assert len(applied(audit, service)) == 2


def applied(audit: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [a for a in audit if a.get("type") == "outcome" and a.get("service") == service
            and a.get("status") == "applied" and a.get("issued_by", "").startswith("rule:")]


# The demo's regression is cut at 730 s of event time (bucket 720-730); its events stop
# being worse from here on, so the canary recovers at 10 %.
RECOVERS_AT = 740.0


async def test_a_regression_that_stops_after_the_first_cut_gets_its_share_back(
        run: IsolatedRun, tmp_path: Path) -> None:
    """Cut from 50 % to 10 %, then calm for recovery_seconds: restored to 50 % by one
    compare-and-set promote, the cut and the restore each once in the history and audit."""
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    policy = staged_policy(tmp_path, step_seconds=300, recovery_seconds=60)
    worse = [e for e in scenario_events(service, REGRESSION) if e["ts"] < T0 + RECOVERS_AT]
    healthy = [e for e in scenario_events(service, BLIP_ONLY) if e["ts"] >= T0 + RECOVERS_AT]
    worker = run.start_worker(ROLLGUARD_POLICY=policy)
    try:
        await produce(run, worse)
        # Events arrive as time passes: the recovery is only seen once the cut is in Redis.
        await wait_for_audit(run, lambda found: len(applied(found, service)) >= 1, timeout=60)
        assert (await store.read(service)).percent == 10.0
        await produce(run, healthy)
        await wait_for_audit(run, lambda found: len(applied(found, service)) >= 2, timeout=60)
        await wait_processed(run)
    finally:
        stop(worker)
    state = await store.read(service)
    assert (state.active, state.candidate, state.percent) == ("v1", "v2", 50.0)
    assert rule_moves(await store.history(service, count=100)) == [
        ("rollback", 10.0, "applied"), ("promote", 50.0, "applied")]
    audit = await read_topic(run.topic("audit"))
    decided = staged_decisions(audit, service)
    assert [(a["action"], a["evidence"]["staged"]["percent"]) for a in decided] == [
        ("stage", 10.0), ("restore", 10.0)]
    assert "recovered at 10%" in decided[1]["reason"]
    assert decided[1]["evidence"]["staged"]["restore_percent"] == 50.0
    assert [a["op"] for a in applied(audit, service)] == ["rollback", "promote"]


async def test_a_pinned_service_gets_no_step(run: IsolatedRun, tmp_path: Path) -> None:
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    (await store.issue(service, "pin", "ops", reason="hands off")).raise_for_status()
    epoch = (await store.read(service)).epoch
    worker = run.start_worker(ROLLGUARD_POLICY=staged_policy(tmp_path))
    try:
        await produce(run, scenario_events(service, REGRESSION))
        audit = await wait_for_audit(run, lambda found: any(
            a.get("type") == "rollback-suppressed" and a.get("service") == service
            for a in found), timeout=120)
        await wait_processed(run)
    finally:
        stop(worker)
    suppressed = next(a for a in audit if a.get("type") == "rollback-suppressed")
    assert "pinned" in suppressed["why"] and suppressed["action"] == "stage"
    assert rule_moves(await store.history(service, count=100)) == []
    assert (await store.read(service)).epoch == epoch
