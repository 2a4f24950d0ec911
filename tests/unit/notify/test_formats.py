"""What Slack, the signed webhook and PagerDuty receive, and that secrets stay out of sight."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
import pytest

from rollguard.base.errors import ConfigError
from rollguard.notify import formats
from rollguard.notify.outbox import summarise
from rollguard.notify.settings import NotifySettings, Redactor
from tests.support.notify_records import (
    WEB,
    approval_needed,
    messages,
    outcome,
    rollback,
    staged,
)


def test_a_slack_message_says_what_where_why_and_what_to_do() -> None:
    (message,) = messages(rollback(100, approval=True), approval_needed(100))
    body = formats.slack(message, WEB)
    text = orjson.dumps(body).decode()
    assert body["text"].startswith("chat v2: ")
    for expected in ("chat · release v2", "hallucination of v2 is 0.09 against 0.02",
                     "`rollguard approve chat c1 --by NAME`", f"<{WEB}/?service=chat|"):
        assert expected in text


def test_the_webhook_body_verifies_with_its_signature_header() -> None:
    (message,) = messages(rollback(100))
    body = orjson.dumps(formats.webhook(message, WEB, now=5.0))
    header = formats.signature(b"k3y", body)
    expected = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert header == f"sha256={expected}"
    decoded = orjson.loads(body)
    assert (decoded["type"], decoded["sent_at"], decoded["episode"]["service"]) == (
        "rollguard.notification", 5.0, "chat")


def test_pagerduty_triggers_and_resolves_one_alert_per_episode() -> None:
    (message,) = messages(rollback(100), outcome(100))
    trigger, resolve = formats.pagerduty(message, "rk", WEB)
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == "rollguard/chat/v2/100"
    assert trigger["routing_key"] == "rk"
    assert {"summary", "source", "severity"} <= set(trigger["payload"])
    assert trigger["payload"]["severity"] == "critical"


def test_a_digest_tells_each_episode_where_it_stands() -> None:
    first = messages(rollback(100, service="a"))
    second = messages(rollback(100, service="b"), outcome(100, service="b"))
    digest = summarise([(0.0, first[0]), (30.0, second[0])])
    text = orjson.dumps(formats.slack(digest, WEB)).decode()
    assert "2 notifications since 00:00 UTC" in text and "*a v2*" in text and "*b v2*" in text
    events = formats.pagerduty(digest, "rk", WEB)
    assert [(e["dedup_key"], e["event_action"]) for e in events] == [
        ("rollguard/a/v2/100", "trigger"), ("rollguard/b/v2/100", "resolve")]


def test_secrets_are_masked_in_log_text() -> None:
    url = "https://hooks.slack.example/services/T0/B0/s3cr3t"
    assert "s3cr3t" not in Redactor([url, "s3cr3t"]).clean(f"POST {url}: refused; key s3cr3t")


def test_a_bad_url_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLGUARD_SECRET", "notify-test-secret")  # signs webhook bodies
    monkeypatch.setenv("ROLLGUARD_NOTIFY_WEBHOOK", "hooks.example/s3cr3t")
    with pytest.raises(ConfigError, match="ROLLGUARD_NOTIFY_WEBHOOK") as raised:
        NotifySettings.from_env()
    assert "s3cr3t" not in str(raised.value)


def test_only_commands_are_set_as_code_in_slack() -> None:
    """A to-do that merely mentions rollguard is prose; the re-release command is code."""
    (message,) = messages(rollback(100), outcome(100))
    text = orjson.dumps(formats.slack(message, WEB)).decode()
    assert "`rollguard promote chat v2 --percent 10`" in text
    assert text.count("`") == 2, text


@pytest.mark.parametrize("records, expected", [
    pytest.param([staged(100), outcome(100, percent=10.0, message="v2 now serves 10% of chat")],
                 ["v2 cut to 10% of the traffic (step 1 of 2) and judged again there",
                  "to hold it at 10%: `rollguard pin chat`",
                  "to roll it back now: `rollguard rollback chat`",
                  "Cut: v2 now serves 10% of chat"],
                 id="a cut: the new share, judged again there, how to hold or finish it"),
    pytest.param([staged(160, action="restore"),
                  outcome(160, op="promote", percent=50.0, message="v2 now serves 50% of chat")],
                 ["v2 recovered at 10% and gets its 50% of the traffic back",
                  "stayed below the threshold for 60 s", "the traffic, not the release",
                  "Share given back: v2 now serves 50% of chat"],
                 id="a restore: the share given back, and why"),
])
def test_a_staged_rollback_step_says_what_it_did_and_pages_nobody(
        records: list[dict[str, Any]], expected: list[str]) -> None:
    (message,) = messages(*records)
    text = orjson.dumps(formats.slack(message, WEB)).decode()
    for said in expected:
        assert said in text
    assert "nothing yet" not in text and "Rolled back" not in text
    assert "regression of" not in text.lower()
    assert formats.pagerduty(message, "rk", WEB) == []


@pytest.mark.parametrize("action, title", [
    ("stage", "Cut to 10% of v2 not carried out: the service is pinned"),
    ("restore", "v2 recovered, but its share was not given back: the service is pinned"),
])
def test_a_suppressed_step_of_a_staged_rollback_names_the_step(action: str, title: str) -> None:
    record = {**staged(100, action=action), "type": "rollback-suppressed",
              "why": "the service is pinned; automatic rollbacks are refused"}
    (message,) = messages(record)
    assert message.notices[0].title.startswith(title)


def test_a_rollout_hold_is_told_with_what_to_do_and_a_wait_is_not() -> None:
    """A guarded rollout's hold names the commands a person has; its waits are not news."""
    from rollguard.notify.notices import read_record

    record = {"type": "rollout", "at": 5.0, "service": "chat", "release": "v2",
              "action": "hold", "percent": 5.0, "step": 2, "reason": "too thin",
              "to_percent": None}
    notice = read_record(record)
    assert notice is not None and notice.kind == "rollout-hold"
    assert notice.title == "Rollout of v2 holds at 5%" and notice.evidence == "too thin"
    assert "rollguard rollout approve chat" in notice.todo
    assert read_record({**record, "action": "wait"}) is None
