"""What the demo prints of the Slack-format messages its receiver captured."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from rollguard.demo.receiver import Receiver
from rollguard.demo.slack import thread_report

WHERE = "http://127.0.0.1:1/slack"
SAVED = Path(".rollguard/runs/demo-x-slack.json")


def slack_body(*lines: str) -> bytes:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": line}} for line in lines]
    return orjson.dumps({"text": lines[0], "blocks": blocks})


def test_the_report_shows_each_message_as_slack_does_and_where_it_was_captured() -> None:
    receiver = Receiver()
    receiver.take("slack", {}, slack_body("chat · v2 (new)", ":warning: *Transient*"))
    receiver.take("slack", {}, slack_body("chat · v2 (update)", "<http://s/|Status page>"))
    report = thread_report(receiver, WHERE, SAVED)
    assert report.splitlines() == [
        f"Slack-format messages (2), captured by the local receiver at {WHERE}; saved in "
        f"{SAVED}:",
        "  | chat · v2 (new)", "  | ⚠ *Transient*", "",
        "  | chat · v2 (update)", "  | Status page (http://s/)"]


@pytest.mark.parametrize(("status", "path"), [(503, "slack"), (200, "webhook")])
def test_a_report_of_nothing_captured_says_so(status: int, path: str) -> None:
    """A refused request, or one to another destination, is no Slack message."""
    receiver = Receiver(lambda _path, _n: status)
    receiver.take(path, {}, slack_body("x"))
    assert thread_report(receiver, WHERE, SAVED) == (
        f"no Slack-format message reached the local receiver at {WHERE}")
