"""What Slack, the signed webhook and PagerDuty receive, and that secrets stay out of sight."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
import pytest

from rollguard.errors import ConfigError
from rollguard.notify import formats
from rollguard.notify.episodes import Batcher, EpisodeBook, Message
from rollguard.notify.notices import read_record
from rollguard.notify.outbox import summarise
from rollguard.notify.settings import NotifySettings, Redactor
from tests.support.notify_records import approval_needed, outcome, rollback

WEB = "http://status.example"


def messages(*records: dict[str, Any]) -> list[Message]:
    book, batcher = EpisodeBook(), Batcher(batch_s=1.0)
    for record in records:
        update = book.add(read_record(record))
        if update is not None:
            batcher.add(update, now=0.0)
    return batcher.due(1.0)


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
