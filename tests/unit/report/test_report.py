"""Incident reports assembled from plain history entries and audit records, and rendered."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollguard.actions.state import PointerState
from rollguard.detectors.policy import default_policy
from rollguard.report.chart import events_of, window
from rollguard.report.render import RENDERERS, Report
from rollguard.report.story import incidents, parse_since
from rollguard.streams.wire import encode_batch, encode_blocks


def entry(at: float, op: str, release: str, outcome: str = "applied", by: str = "ana",
          command_id: str = "", epochs: tuple[int, int] = (1, 2), **command: Any,
          ) -> dict[str, Any]:
    return {"at": at, "op": op, "outcome": outcome, "release": release, "issued_by": by,
            "command_id": command_id or f"{op}-{at:g}", "epoch_before": epochs[0],
            "epoch_after": epochs[1], "command": {"release": release, **command}}


def decided(at: float, command_id: str, release: str = "v2", **extra: Any) -> dict[str, Any]:
    return {"type": "decision", "at": at, "ts": at - 100, "service": "chat",
            "release": release, "action": "rollback", "verdict": "sustained", "to": "v1",
            "components": [], "reason": "error rate worse", "command_id": command_id,
            "evidence": {"metric": "error", "baseline": 0.01, "candidate": 0.05,
                         "since": 1_763_856_000.0, "rule": "error"}, **extra}


def alert(at: float, release: str = "v2") -> dict[str, Any]:
    return {"type": "decision", "at": at, "ts": at - 100, "service": "chat",
            "release": release, "action": "alert", "verdict": "transient",
            "reason": "a blip", "evidence": {"metric": "latency_ms"}}


DEPLOY = entry(100.0, "promote", "v2", percent=10.0, reason="new prompt")
FLIP = entry(300.02, "rollback", "v1", by="rule:error", command_id="c1", epochs=(2, 3),
             reason="error rate worse")


def test_a_rule_rollback_tells_deploy_alerts_decision_and_flip_in_order() -> None:
    """Alerts about other releases or before the deploy are left out."""
    records = [alert(50.0), alert(150.0), alert(160.0, release="v9"), decided(300.0, "c1"),
               {"type": "outcome", "at": 300.02, "service": "chat", "command_id": "c1",
                "status": "applied"}]
    [story] = incidents([DEPLOY, FLIP], records)
    assert [s.kind for s in story.timeline] == ["deployed", "alert", "decision", "flipped"]
    assert (story.release, story.to, story.issued_by, story.epochs) == (
        "v2", "v1", "rule:error", (2, 3))
    assert story.timeline[0].text.startswith("v2 deployed on 10 % of traffic by ana")
    assert story.seconds_between("decision", "flipped") == pytest.approx(0.02)
    assert story.decision is not None and story.decision["evidence"]["candidate"] == 0.05


def test_an_approved_rollback_names_who_approved_and_when_it_waited() -> None:
    """The approval-needed record and the approver stored in the command are steps."""
    flip = entry(400.0, "rollback", "v1", by="rule:error", command_id="c1", epochs=(2, 3),
                 evidence={"approved_by": "bob", "approved_at": 399.5})
    records = [decided(300.0, "c1", requires_approval=True),
               {"type": "approval-needed", "at": 300.01, "service": "chat",
                "command_id": "c1", "how": "rollguard approve chat c1 --by NAME"}]
    [story] = incidents([DEPLOY, flip], records)
    assert story.approved_by == "bob"
    assert [s.kind for s in story.timeline] == ["deployed", "decision", "approval-needed",
                                                "approved", "flipped"]
    assert story.seconds_between("approval-needed", "approved") == pytest.approx(99.49)


@pytest.mark.parametrize(("history", "records", "outcome", "epochs", "issued_by"), [
    ([DEPLOY], [decided(300.0, "c1", requires_approval=True),
                {"type": "approval-needed", "at": 300.01, "service": "chat",
                 "command_id": "c1"}], "waiting for approval", None, "rule:error"),
    ([DEPLOY, entry(300.0, "rollback", "v1", outcome="refused", by="rule:error",
                    command_id="c1", epochs=(2, 2))],
     [decided(299.0, "c1")], "refused", None, "rule:error"),
    ([DEPLOY, entry(300.0, "rollback", "v1", by="carol", epochs=(2, 3))], [], "applied",
     (2, 3), "carol"),
])
def test_every_kind_of_rollback_is_an_incident(history: list[dict[str, Any]],
                                               records: list[dict[str, Any]], outcome: str,
                                               epochs: tuple[int, int] | None,
                                               issued_by: str) -> None:
    """Waiting, refused and manual rollbacks are told too; a manual one names the release
    it rolled back from the promote before it."""
    [story] = incidents(history, records)
    assert (story.release, story.outcome, story.epochs, story.issued_by) == (
        "v2", outcome, epochs, issued_by)


def test_since_keeps_the_incidents_of_the_range_oldest_first() -> None:
    """Two rollbacks; --since between them keeps the later one."""
    history = [DEPLOY, FLIP, entry(500.0, "promote", "v3", epochs=(3, 4)),
               entry(900.0, "rollback", "v1", by="dan", epochs=(4, 5))]
    assert [i.release for i in incidents(history, [decided(300.0, "c1")])] == ["v2", "v3"]
    assert [i.release for i in incidents(history, [], since=600.0)] == ["v3"]


@pytest.mark.parametrize(("text", "expected"), [
    ("90m", 10_000.0 - 5400), ("30s", 9_970.0), ("1.5h", 10_000.0 - 5400),
    ("1d", 10_000.0 - 86_400), ("2025-11-23T00:00Z", 1_763_856_000.0),
    ("2025-11-23 00:00:00", 1_763_856_000.0),
])
def test_since_reads_durations_and_iso_times(text: str, expected: float) -> None:
    """Durations count back from now; a time without an offset is UTC."""
    assert parse_since(text, now=10_000.0) == expected


@pytest.mark.parametrize("text", ["", "h", "-2h", "last week", "2025-13-01"])
def test_since_refuses_what_it_cannot_read(text: str) -> None:
    """A clear error naming the option, not a traceback."""
    with pytest.raises(ValueError, match="--since"):
        parse_since(text, now=0.0)


def report(**changes: Any) -> Report:
    [story] = incidents([DEPLOY, FLIP], [alert(150.0), decided(300.0, "c1")])
    pointer = PointerState("chat", active="v1", stable="v1", epoch=3, active_components={},
                           updated_at=300.02, updated_by="rule:error")
    fields: dict[str, Any] = {"service": "chat", "generated_at": 1_000.0, "pointer": pointer,
                              "policy": default_policy(), "policy_source": "p.yaml",
                              "audit_topic": "rollguard.audit", "incidents": [story]}
    return Report(**{**fields, **changes})


@pytest.mark.parametrize("form", sorted(RENDERERS))
def test_every_format_tells_the_rollback_the_evidence_the_pointer_and_the_policy(
        form: str) -> None:
    """The same facts in Markdown, HTML and JSON."""
    text = RENDERERS[form](report())
    for fact in ("v2 rolled back to v1", "rule:error", "error rate worse", "active v1",
                 "hallucination", "p.yaml", "0.05"):
        assert fact in text, (form, fact)
    if form == "json":
        body = orjson.loads(text)
        assert body["incidents"][0]["epochs"] == [2, 3]
        assert body["incidents"][0]["durations_s"]["first alert → decision"] == 150.0


def test_html_escapes_what_the_records_say() -> None:
    """A reason is text, never markup."""
    [story] = incidents([DEPLOY, FLIP], [decided(300.0, "c1", reason="<script>x</script>")])
    page = RENDERERS["html"](report(incidents=[story]))
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_a_range_without_incidents_says_so() -> None:
    """An empty report is still a report of the pointer and the policy."""
    assert "No rollback in the range." in RENDERERS["md"](report(incidents=[]))


def event(event_id: str, service: str = "chat", **metrics: float) -> dict[str, Any]:
    return {"event_id": event_id, "ts": 1_763_856_000.0, "service": service, "release": "v2",
            "metrics": metrics or {"error": 0.0}}


@pytest.mark.parametrize("encode", [encode_batch, encode_blocks])
def test_a_chart_reads_the_services_valid_events_from_either_layout(encode: Any) -> None:
    """Objects and blocks alike; other services and bad events are skipped."""
    value = encode([event("a"), event("b", service="other"), event("c", error=1.0)])
    assert [e.event_id for e in events_of(value, "chat")] == ["a", "c"]
    bad = orjson.dumps([event("d"), {**event("e"), "ts": "soon"}])
    assert [e.event_id for e in events_of(bad, "chat")] == ["d"]
    assert list(events_of(b"not json", "chat")) == []


def test_a_block_with_a_bad_event_still_gives_its_good_ones() -> None:
    """A block the worker judged event by event yields the valid events."""
    [block] = orjson.loads(encode_blocks([event("a"), event("b")]))
    block["ts"][1] = "soon"
    assert [e.event_id for e in events_of(orjson.dumps([block]), "chat")] == ["a"]


def test_the_chart_spans_the_baseline_before_the_deploy_and_the_flip_after() -> None:
    """Ten minutes before the first step, five after the last."""
    [story] = incidents([DEPLOY, FLIP], [decided(300.0, "c1")])
    assert window(story) == (100.0 - 600.0, 300.02 + 300.0)


ops = st.sampled_from(["promote", "rollback", "pin"])
outcomes = st.sampled_from(["applied", "already_applied", "refused", "conflict"])
releases = st.sampled_from(["v1", "v2", "v3"])
times = st.floats(min_value=0.0, max_value=1_000.0, allow_nan=False)
histories = st.lists(st.builds(
    lambda at, op, release, outcome, n: entry(at, op, release, outcome,
                                              command_id=f"c{n}"),
    times, ops, releases, outcomes, st.integers(0, 8)), max_size=12)
audits = st.lists(st.one_of(
    st.builds(lambda at, n, release: decided(at, f"c{n}", release), times,
              st.integers(0, 8), releases),
    st.builds(alert, times, releases),
    st.builds(lambda at, n: {"type": "approval-needed", "at": at, "service": "chat",
                             "command_id": f"c{n}"}, times, st.integers(0, 8))), max_size=12)


@given(histories, audits, times)
def test_any_records_give_one_ordered_story_per_rollback(
        history: list[dict[str, Any]], records: list[dict[str, Any]], since: float) -> None:
    """Whatever the records: one incident per rollback command, its steps in time order,
    the incidents in time order, and --since keeps exactly those from then on."""
    history = sorted(history, key=lambda e: e["at"])
    found = incidents(history, records)
    expected = ({e["command_id"] for e in history if e["op"] == "rollback"}
                | {r["command_id"] for r in records if r.get("action") == "rollback"})
    assert sorted(i.command_id for i in found) == sorted(expected)
    for incident in found:
        assert [s.at for s in incident.timeline] == sorted(s.at for s in incident.timeline)
        assert (incident.epochs is not None) == (incident.outcome in ("applied",
                                                                      "already_applied"))
    assert [i.at for i in found] == sorted(i.at for i in found)
    assert [i.command_id for i in incidents(history, records, since)] == [
        i.command_id for i in found if i.at >= since]


def test_a_rollback_read_again_and_refused_as_a_replay_is_still_the_flip() -> None:
    """The actuator refuses a command it reads twice; the story keeps the flip it made."""
    replayed = entry(305.0, "rollback", "v1", outcome="refused", by="rule:error",
                     command_id="c1", epochs=(3, 3))
    [story] = incidents([DEPLOY, FLIP, replayed], [decided(300.0, "c1")])
    assert (story.outcome, story.epochs) == ("applied", (2, 3))
