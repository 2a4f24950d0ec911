"""Staged rollback end to end on the real broker and Redis: a sustained regression under a
staged policy cuts the canary to 10 %, then to 0 % (rolled back), each step once, in the
Redis history and on the audit topic; a pinned service gets no step."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.e2e_support import (
    new_service,
    produce,
    scenario_events,
    setup_service,
    wait_for_audit,
)
from tests.integration.test_worker_e2e import REGRESSION, fixture_run, stop
from tests.support.runs import IsolatedRun, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]
__all__ = ["fixture_run"]  # the run fixture, shared with the worker's end-to-end tests


def staged_policy(tmp_path: Path) -> str:
    """The default policy with the demo's regressing metric staged: 10 %, then 0 %."""
    raw = yaml.safe_load(resources.files("detectors").joinpath("default_policy.yaml")
                         .read_text("utf-8"))
    raw["metrics"]["hallucination"].update(action="staged", steps=[10, 0], step_seconds=60)
    path = tmp_path / "staged.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def steps_in(history: list[dict[str, Any]]) -> list[tuple[float | None, str]]:
    """(percent, outcome) of every rule's rollback in the history, oldest first."""
    return [(h["command"]["percent"], h["outcome"]) for h in history
            if h.get("op") == "rollback" and h.get("issued_by", "").startswith("rule:")]


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
    assert steps_in(await store.history(service, count=100)) == [(10.0, "applied"),
                                                                   (0.0, "applied")]
    state = await store.read(service)
    assert state.active == "v1" and state.candidate is None
    decided = [(a["action"], a["evidence"]["staged"]["percent"]) for a in audit
               if a.get("type") == "decision" and a.get("service") == service
               and "staged" in a.get("evidence", {})]
    assert decided == [("stage", 10.0), ("rollback", 0.0)]
    assert len(applied(audit, service)) == 2


def applied(audit: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [a for a in audit if a.get("type") == "outcome" and a.get("service") == service
            and a.get("status") == "applied" and a.get("issued_by", "").startswith("rule:")]


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
    assert steps_in(await store.history(service, count=100)) == []
    assert (await store.read(service)).epoch == epoch
