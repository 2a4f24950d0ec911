"""An incident of a release deployed by a guarded rollout: its steps told with their times,
from the pointer history and the worker's ramp verdicts on the audit topic."""

from __future__ import annotations

from typing import Any

import orjson

from rollguard.detectors.policy import default_policy
from rollguard.report.render import RENDERERS, Report
from rollguard.report.story import incidents


def entry(at: float, op: str, by: str, epochs: tuple[int, int], release: str = "v2",
          outcome: str = "applied", message: str = "", **command: Any) -> dict[str, Any]:
    return {"at": at, "op": op, "outcome": outcome, "release": release, "issued_by": by,
            "command_id": f"{op}-{at:g}", "epoch_before": epochs[0], "epoch_after": epochs[1],
            "message": message, "command": {"release": release, **command}}


def verdict(at: float, action: str, percent: float, reason: str = "",
            release: str = "v2") -> dict[str, Any]:
    return {"type": "rollout", "at": at, "service": "chat", "release": release,
            "rollout": "start-100", "action": action, "percent": percent, "step": 1,
            "reason": reason, "to_percent": None, "needed_events": None}


START = entry(100.0, "rollout_start", "ann", (1, 2), message="rollout of v2 started",
              evidence={"plan": {"steps": [1, 5, 25, 100]}})
MOVED = [entry(500.0, "ramp", "rule:rollout", (2, 3), percent=5.0,
               message="v2 now serves 5% of chat (step 2 of 4)", evidence={"from": 1.0}),
         entry(900.0, "ramp", "rule:rollout", (3, 4), percent=25.0,
               message="v2 now serves 25% of chat (step 3 of 4)", evidence={"from": 5.0})]
RECORDS = [verdict(300.0, "wait", 1.0, "gathering evidence at 1%"),
           verdict(499.0, "advance", 5.0, "step 1 (1%) passed"),
           verdict(700.0, "hold", 5.0, "traffic too thin: 120 more events needed"),
           verdict(710.0, "hold", 5.0, "another release", release="v9"),
           verdict(1200.0, "abort", 25.0, "a sustained regression at 25%: error (rollback)"),
           {"type": "decision", "at": 1200.0, "ts": 1100.0, "service": "chat",
            "release": "v2", "action": "rollback", "verdict": "sustained", "to": "v1",
            "components": [], "reason": "error rate worse", "command_id": "c1",
            "evidence": {"metric": "error", "rule": "error"}}]
ROLLBACK = entry(1200.02, "rollback", "rule:error", (4, 5), release="v1")
ROLLBACK["command_id"] = "c1"


def report_of(history: list[dict[str, Any]], records: list[dict[str, Any]]) -> Report:
    return Report(service="chat", generated_at=2000.0, pointer=None, policy=default_policy(),
                  policy_source="the shipped default", audit_topic="audit",
                  incidents=incidents(history, records))


def test_a_rolled_back_rollout_lists_its_steps_with_their_times() -> None:
    """Started, moved (the history's moves, with epochs), held, aborted (the worker's
    verdicts); waits, the advance verdicts the history tells as moves, and other releases'
    verdicts are left out."""
    [story] = incidents([START, *MOVED, ROLLBACK], RECORDS)
    assert (story.release, story.to, story.issued_by) == ("v2", "v1", "rule:error")
    assert [(s.at, s.details["action"], s.details["percent"]) for s in story.rollout] == [
        (100.0, "started", 1.0), (500.0, "advanced", 5.0), (700.0, "held", 5.0),
        (900.0, "advanced", 25.0), (1200.0, "aborted", 25.0)]
    assert [s.kind for s in story.timeline] == [
        "deployed", "rollout", "rollout", "rollout", "rollout", "decision", "flipped"]
    assert story.timeline[0].text.startswith(
        "v2's guarded rollout started on 1 % of traffic by ann (steps 1, 5, 25, 100 %")
    assert "epoch 2 → 3" in story.timeline[1].text


def test_the_report_has_a_table_of_the_rollouts_steps_in_each_format() -> None:
    report = report_of([START, *MOVED, ROLLBACK], RECORDS)
    markdown = RENDERERS["md"](report)
    assert "### The guarded rollout of v2" in markdown
    assert "| 5 % | advanced by rule:rollout |" in markdown
    assert "| 5 % | held by rule:rollout |" in markdown
    assert "| 25 % | aborted by rule:rollout |" in markdown
    assert "The guarded rollout of v2</h3>" in RENDERERS["html"](report)
    [found] = orjson.loads(RENDERERS["json"](report))["incidents"]
    assert [(r["action"], r["percent"]) for r in found["rollout"]] == [
        ("started", "1 %"), ("advanced", "5 %"), ("held", "5 %"), ("advanced", "25 %"),
        ("aborted", "25 %")]


def test_a_persons_abort_of_a_rollout_is_an_incident_with_its_pauses() -> None:
    history = [START, MOVED[0],
               entry(600.0, "rollout_pause", "bo", (3, 4), release="",
                     message="rollout of v2 paused at 5%"),
               entry(800.0, "rollout_abort", "bo", (4, 5), release="",
                     message="rollout of v2 aborted at 5% by bo")]
    [story] = incidents(history, [])
    assert (story.release, story.issued_by, story.epochs) == ("v2", "bo", (4, 5))
    assert [(s.details["action"], s.details["by"]) for s in story.rollout] == [
        ("started", "ann"), ("advanced", "rule:rollout"), ("paused", "bo")]
    assert story.timeline[-1].kind == "flipped"


def test_a_plain_deploy_has_no_rollout_section() -> None:
    promote = entry(100.0, "promote", "ana", (1, 2), percent=10.0)
    report = report_of([promote, ROLLBACK], RECORDS[-1:])
    [story] = report.incidents
    assert story.rollout == []
    assert "guarded rollout" not in RENDERERS["md"](report)
