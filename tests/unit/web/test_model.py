"""The status page's model: judgements, markers, history and approvals from plain records."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rollguard.actions.state import PointerState
from rollguard.web.model import (
    RECENT_S,
    history_rows,
    last_decision,
    marker,
    pending_rows,
    service_page,
    service_row,
)
from rollguard.web.model import judgement as judge
from rollguard.web.series import PRELUDE_KEPT, SeriesBook, read_levels

CANARY = PointerState("chat", active="v1", stable="v1", epoch=2, active_components={},
                      candidate="v2", percent=50.0, watched_since=2, updated_at=90.0,
                      updated_by="ana")
SETTLED = PointerState("chat", active="v1", stable="v1", epoch=3, active_components={})


def decision(at: float, verdict: str, action: str = "alert", release: str = "v2",
             **extra: Any) -> dict[str, Any]:
    return {"type": "decision", "at": at, "ts": at - 5, "service": "chat", "release": release,
            "action": action, "verdict": verdict, "to": "v1", "components": [],
            "reason": f"{verdict} worse", "evidence": {"metric": "error", "candidate": 0.1},
            **extra}


@pytest.mark.parametrize(("pointer", "records", "pending", "now", "expected"), [
    (None, [], {}, 100.0, "ok"),
    (SETTLED, [decision(100.0, "sustained", "rollback")], {}, 101.0, "ok"),
    (CANARY, [], {}, 100.0, "watching"),
    (CANARY, [decision(100.0, "transient")], {}, 160.0, "transient"),
    (CANARY, [decision(100.0, "sustained")], {}, 160.0, "sustained"),
    (CANARY, [decision(100.0, "inconclusive")], {}, 160.0, "inconclusive"),
    (CANARY, [decision(100.0, "transient")], {}, 100.0 + RECENT_S + 1, "watching"),
    (CANARY, [decision(100.0, "sustained", release="v0")], {}, 160.0, "watching"),
    (CANARY, [decision(100.0, "sustained"), decision(150.0, "transient")], {}, 160.0,
     "transient"),
    (CANARY, [decision(100.0, "sustained", "rollback")], {"c1": b"{}"}, 160.0,
     "waiting for approval"),
])
def test_judgement_follows_the_newest_recent_verdict_about_the_watched_release(
        pointer: PointerState | None, records: list[dict[str, Any]], pending: dict[str, bytes],
        now: float, expected: str) -> None:
    """A pending approval wins; no candidate is ok; an old or foreign verdict is watching."""
    assert judge(pointer, records, pending, now) == expected


def test_a_row_says_what_serves_and_how_it_is_judged() -> None:
    """The overview row carries the pointer's fields, the judgement and the approvals."""
    row = service_row("chat", CANARY, [decision(100.0, "transient")], {"c1": b"{}"}, 110.0)
    assert row == {"service": "chat", "judgement": "waiting for approval", "pending": 1,
                   "drill": False, "active": "v1", "stable": "v1", "candidate": "v2",
                   "percent": 50.0, "cohorts": [], "pinned": False, "epoch": 2,
                   "updated_at": 90.0, "updated_by": "ana", "rollout": None}
    assert service_row("new", None, [], {}, 1.0)["active"] is None


def test_a_row_says_where_a_rollout_stands_and_what_it_waits_for() -> None:
    rollout = {"id": "c9", "release": "v2", "plan": {"steps": [50, 100]}, "step": 0,
               "status": "paused", "by": "ana", "signed_by": "ana", "started_at": 80.0,
               "since": 85.0, "last": {"op": "pause", "by": "bo"}}
    row = service_row("chat", CANARY.with_changes(rollout=rollout), [], {}, 110.0)
    shown = row["rollout"]
    assert (shown["release"], shown["step"], shown["percent"], shown["seconds_at_step"]) == (
        "v2", 1, 50.0, 25.0)
    assert "paused by bo" in shown["waits_for"]


@pytest.mark.parametrize(("record", "kind"), [
    (decision(1.0, "transient"), "alert"),
    ({**decision(1.0, "transient"), "type": "alert"}, "alert"),
    (decision(1.0, "sustained", "rollback"), "decision"),
    ({"type": "outcome", "at": 1.0, "op": "rollback", "status": "applied"}, "flip"),
    ({"type": "approval-needed", "at": 1.0, "command_id": "c1"}, "approval"),
    ({"type": "rollback-suppressed", "at": 1.0, "why": "pinned"}, "suppressed"),
    ({"type": "outcome", "at": 1.0, "op": "rollback", "status": "refused"}, None),
    ({"type": "command-refused", "at": 1.0}, None),
])
def test_records_that_fired_something_become_chart_markers(record: dict[str, Any],
                                                           kind: str | None) -> None:
    """Alerts, decisions, flips, approvals asked and suppressed rollbacks are marked."""
    found = marker(record)
    assert (found or {}).get("kind") == kind


def test_the_last_decision_prefers_the_rollback_and_keeps_its_evidence() -> None:
    """A transient alert after the rollback decision does not hide it."""
    records = [decision(1.0, "transient"), decision(2.0, "sustained", "rollback",
                                                    command_id="c9"),
               decision(3.0, "transient")]
    found = last_decision(records)
    assert found is not None
    assert (found["verdict"], found["command_id"], found["evidence"]["metric"]) == (
        "sustained", "c9", "error")
    assert last_decision([]) is None


def test_history_rows_are_newest_first_with_who_and_why() -> None:
    """The command's reason and its approver come out of the stored command."""
    command = {"reason": "too many errors", "release": "v1",
               "evidence": {"approved_by": "bob"}}
    history = [
        {"at": 1.0, "op": "promote", "outcome": "applied", "release": "v2", "issued_by": "ana",
         "command": {"reason": "deploy"}, "epoch_before": 1, "epoch_after": 2},
        {"at": 2.0, "op": "rollback", "outcome": "applied", "release": "v1",
         "issued_by": "rule:policy", "command": command, "epoch_before": 2, "epoch_after": 3},
    ]
    rows = history_rows(history)
    assert [(r["op"], r["by"], r["approved_by"], r["reason"]) for r in rows] == [
        ("rollback", "rule:policy", "bob", "too many errors"), ("promote", "ana", None, "deploy")]


def test_pending_commands_say_how_to_approve_them() -> None:
    """Each waiting command comes with its approve command line; bad JSON still lists it."""
    raw = orjson.dumps({"op": "rollback", "issued_by": "rule:policy", "reason": "worse",
                        "release": "v1", "issued_at": 5.0})
    rows = pending_rows("chat", {"c2": raw, "c1": b"not json"})
    assert [r["command_id"] for r in rows] == ["c1", "c2"]
    assert rows[1]["how"] == "rollguard approve chat c2 --by NAME"
    assert (rows[1]["op"], rows[1]["to"]) == ("rollback", "v1")


def test_a_page_puts_promotes_and_records_on_one_timeline() -> None:
    """Markers from the history (promotes, rollbacks) and the audit records are sorted."""
    history = [{"at": 50.0, "op": "promote", "outcome": "applied", "release": "v2"}]
    records = [decision(100.0, "sustained", "rollback"),
               {"type": "outcome", "at": 100.01, "op": "rollback", "status": "applied"}]
    page = service_page("chat", SETTLED, history, records, {}, {}, 120.0)
    assert [m["kind"] for m in page["markers"]] == ["deploy", "decision", "flip"]
    assert page["service"]["judgement"] == "ok"
    assert page["recent"][0]["type"] == "outcome"


def test_scrapes_become_points_of_services_with_a_candidate_when_levels_change() -> None:
    """Equal scrapes add nothing; a service without a candidate keeps a short prelude; the
    oldest points go first; the candidate leaving is a point of its own."""
    book = SeriesBook(kept=3)

    def scrape(service: str, candidate: float | None) -> str:
        labels = f'service="{service}",metric="m"'
        text = (f'rollguard_metric_value{{{labels},release="v1",role="baseline"}} 1\n'
                f'rollguard_metric_limit{{{labels}}} 1.5\n'
                'rollguard_events_total{outcome="counted"} 7\n')
        if candidate is not None:
            text += (f'rollguard_metric_value{{{labels},release="v2",role="candidate"}} '
                     f'{candidate}\n')
        return text

    for step in range(PRELUDE_KEPT + 5):  # a baseline that moves a little at every scrape
        book.add(read_levels(scrape("a", None).replace("} 1\n", f"}} {1 + step / 1e3}\n")),
                 step - 100.0)
    assert len(book.of("a")["m"]["points"]) == PRELUDE_KEPT
    for at, candidate in ((1.0, 1.2), (2.0, 1.2), (3.0, 1.4), (4.0, None)):
        book.add(read_levels(scrape("a", candidate)), at)
    assert book.of("a")["m"]["points"] == [[1.0, 1.0, 1.2, 1.5], [3.0, 1.0, 1.4, 1.5],
                                           [4.0, 1.0, None, 1.5]]
    assert book.of("a")["m"]["releases"] == {"baseline": "v1"}
    assert book.of("b") == {}
