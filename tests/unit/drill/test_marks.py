"""Drills are told as drills everywhere (the audit topic, notifications, the status page,
reports, the history) and touch nothing of real services (no page, no fleet-wide view)."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from rollguard.actions.state import PointerState
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.monitors import MonitorSet
from rollguard.detectors.policy import default_policy
from rollguard.notify import formats
from rollguard.notify.metrics import NotifyMetrics, render
from rollguard.notify.outbox import Outbox
from rollguard.report.render import Report, as_markdown
from rollguard.streams.messages import decision_messages
from rollguard.web.model import service_row
from tests.support.notify_records import WEB, messages, outcome, rollback

DRILL = "rollguard-drill"


def test_a_drill_decision_is_marked_on_the_audit_and_alerts_topics() -> None:
    decision = Decision(ts=1.0, service=DRILL, release="drill-01", action=DecisionAction.ALERT,
                        verdict=Verdict.TRANSIENT, to="drill-stable", components=[],
                        reason="a blip")
    alerts, audit, _ = decision_messages(decision, None, at=2.0)
    assert orjson.loads(alerts[0])["drill"] is True and orjson.loads(audit[0])["drill"] is True
    real = decision_messages(Decision(**{**decision.__dict__, "service": "chat"}), None, 2.0)
    assert "drill" not in orjson.loads(real[1][0])


def test_a_drill_rollback_is_told_as_a_drill_and_pages_nobody() -> None:
    (message,) = messages(rollback(100, service=DRILL, release="drill-01"),
                          outcome(100.01, service=DRILL))
    assert formats.pagerduty(message, "routing-key", WEB) == []
    slack = orjson.dumps(formats.slack(message, WEB)).decode()
    assert "[drill] Rollback of drill-01" in slack and "DRILL: a rehearsal" in slack
    assert "no real service is affected" in slack
    assert formats.webhook(message, WEB, now=5.0)["episode"]["drill"] is True
    (real,) = messages(rollback(100), outcome(100.01))
    assert [e["event_action"] for e in formats.pagerduty(real, "routing-key", WEB)] == [
        "trigger", "resolve"]


def test_the_notifier_says_when_a_drill_notice_reached_each_destination_but_pagerduty() -> None:
    (message,) = messages(rollback(100, service=DRILL, release="drill-01"),
                          outcome(101, service=DRILL))
    boxes = {"slack": Outbox(), "pagerduty": Outbox()}
    for box in boxes.values():
        box.put(message, now=0.0)
        box.delivered(now=1.0)
    text = render(NotifyMetrics(boxes, lambda: 0, drills=["slack"]).snapshot()).decode()
    assert ('rollguard_notify_drill_notice_timestamp_seconds{destination="slack"} 101.0'
            in text)
    assert 'drill_notice_timestamp_seconds{destination="pagerduty"}' not in text


def test_a_drill_service_is_marked_on_the_status_page() -> None:
    pointer = PointerState(DRILL, active="drill-stable", stable="drill-stable", epoch=3,
                           active_components={"model": "drill-stable"})
    assert service_row(DRILL, pointer, [], {}, now=0.0)["drill"] is True
    assert service_row("chat", None, [], {}, now=0.0)["drill"] is False


def test_a_drill_service_report_says_its_rollbacks_are_rehearsals() -> None:
    report = Report(service=DRILL, generated_at=0.0, pointer=None, incidents=[],
                    policy=default_policy(), policy_source="the shipped default",
                    audit_topic="rollguard.audit")
    assert "every rollback below is a rehearsal of the guard" in as_markdown(report)
    assert "rehearsal" not in as_markdown(Report(**{**report.__dict__, "service": "chat"}))


def test_a_drill_service_never_joins_the_fleet_view() -> None:
    """Its moves could otherwise count towards holding a real service's rollback."""
    monitors = MonitorSet(default_policy())
    assert monitors.monitor_for(DRILL).fleet is None
    assert monitors.monitor_for("chat").fleet is monitors.fleet


def test_the_history_of_a_drill_service_is_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    from rollguard.cli import pointer as cli_pointer

    entry = {"at": 0.0, "outcome": "applied", "op": "promote", "release": "drill-01",
             "issued_by": "rollguard-drill", "epoch_before": 1, "epoch_after": 2}

    async def fake_history(self: object, service: str, count: int = 50) -> list[object]:
        return [entry]

    monkeypatch.setattr(cli_pointer.PointerStore, "history", fake_history)
    result = CliRunner().invoke(cli_pointer.history, [DRILL])
    assert result.output.startswith("[drill] "), result.output
    result = CliRunner().invoke(cli_pointer.history, [DRILL, "--json"])
    assert orjson.loads(result.output)[0]["drill"] is True
