"""`rollguard report` after a real rollback on the real broker and Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.support.e2e import (
    REGRESSION,
    fixture_run,
    new_service,
    produce,
    scenario_events,
    setup_service,
    start,
    stop,
    wait_for_audit,
)
from tests.support.runs import IsolatedRun

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]
__all__ = ["fixture_run"]  # the worker tests' isolated run


def report(run: IsolatedRun, service: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "rollguard.cli", "report", service, *args],
                            env=run.env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def flipped(records: list[dict]) -> bool:
    return any(r.get("type") == "outcome" and r.get("op") == "rollback"
               and r.get("status") == "applied" for r in records)


async def test_report_tells_the_rollback_from_deploy_to_flip(run: IsolatedRun,
                                                             tmp_path: Path) -> None:
    """The report of a service the worker rolled back names the deploy, the decision with
    its evidence, the rule that issued the command, the flip's epochs and the pointer now."""
    service = new_service()
    await setup_service(run, service, canary_percent=50)
    worker = start(run)
    try:
        await produce(run, scenario_events(service, REGRESSION))
        await wait_for_audit(run, flipped, timeout=90)
    finally:
        stop(worker)
    body = orjson.loads(report(run, service, "--format", "json"))
    [incident] = body["incidents"]
    assert (incident["release"], incident["to"], incident["epochs"]) == ("v2", "v1", [2, 3])
    assert incident["issued_by"].startswith("rule:")
    assert incident["decision"]["verdict"] == "sustained"
    assert incident["decision"]["evidence"]["candidate"] > incident["decision"]["evidence"][
        "baseline"]
    kinds = [step["kind"] for step in incident["timeline"]]
    assert kinds[0] == "deployed" and kinds[-2:] == ["decision", "flipped"], kinds
    assert body["pointer"]["candidate"] is None and body["pointer"]["epoch"] == 3
    assert {r["rule"] for r in body["policy"]["rules"]} >= {"hallucination", "error"}
    report(run, service, "--since", "1h", "--chart", str(tmp_path / "metrics.png"),
           "--output", str(tmp_path / "report.md"))
    markdown = (tmp_path / "report.md").read_text()
    assert "## Incident 1: v2 rolled back to v1" in markdown
    assert "### Evidence of the decision" in markdown and "## Policy in force" in markdown
    assert "(metrics.png)" in markdown and (tmp_path / "metrics.png").stat().st_size > 20_000
