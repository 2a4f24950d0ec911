"""The demo's notifier: ``rollguard notify`` in a child process, posting Slack-format
messages to a local :mod:`~rollguard.demo.receiver`, so a person sees what Slack would show
about the episode (its first alert, the rollback decided, the pointer flipped; one thread).
Nothing leaves the machine: the user's own destinations are switched off for the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.emoji import Emoji

from rollguard.demo.isolated import WorkerRun
from rollguard.demo.receiver import Receiver, receiving
from rollguard.demo.view import DemoState

# The demo's time runs fast: a decision and its flip (milliseconds apart) still make one
# message, and the view shows it soon after.
BATCH_S = "0.5"
STOP_S = 15.0  # the notifier drains its queue (5 s at most) and leaves its group
_LINK = re.compile(r"<([^|>]+)\|([^>]+)>")


def slack_text(body: dict[str, Any]) -> str:
    """What a person reads in Slack for an incoming-webhook body: its blocks' text, one
    block a line, an emoji code as the emoji, a link as its label and address (the plain
    ``text`` when there are no blocks).

    >>> slack_text({"text": "fallback", "blocks": [
    ...     {"type": "context", "elements": [{"type": "mrkdwn", "text": "chat · release v2"}]},
    ...     {"type": "section", "text": {"type": "mrkdwn", "text": ":warning: *Rolled back*"}},
    ...     {"type": "context", "elements": [{"type": "mrkdwn", "text": "<http://x/|Status>"}]}]})
    'chat · release v2\\n⚠ *Rolled back*\\nStatus (http://x/)'
    """
    lines = []
    for block in body.get("blocks") or ():
        parts = [block.get("text") or {}, *(block.get("elements") or ())]
        lines += [str(part["text"]) for part in parts if isinstance(part, dict) and "text" in part]
    return Emoji.replace(_LINK.sub(r"\2 (\1)", "\n".join(lines) or str(body.get("text", ""))))


def start_notifier(run: WorkerRun, slack_url: str, web_url: str) -> subprocess.Popen[bytes]:
    """``rollguard notify`` on the run's topics, posting only to ``slack_url``; its messages
    link to the status page at ``web_url``."""
    log = Path(".rollguard/runs") / f"{run.run_id}-notify.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = run.env(ROLLGUARD_NOTIFY_SLACK=slack_url, ROLLGUARD_NOTIFY_WEBHOOK="",
                  ROLLGUARD_NOTIFY_PAGERDUTY_KEY="", ROLLGUARD_NOTIFY_METRICS_ADDR="",
                  ROLLGUARD_NOTIFY_GROUP=f"{run.app_id}-notify",
                  ROLLGUARD_NOTIFY_BATCH_S=BATCH_S, ROLLGUARD_WEB_URL=web_url)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "rollguard.cli", "notify", "--from-beginning"],
            env=env, stdout=out, stderr=subprocess.STDOUT)


async def stop_notifier(process: subprocess.Popen[bytes]) -> None:
    """Ask it to stop (it delivers what it holds first) and wait, without blocking the loop."""
    process.terminate()
    deadline = time.monotonic() + STOP_S
    while process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if process.poll() is None:
        process.kill()
        process.wait()


def thread_report(receiver: Receiver, where: str, saved: Path) -> str:
    """The captured messages as Slack shows them, and where they were captured."""
    bodies = receiver.bodies("slack")
    if not bodies:
        return f"no Slack-format message reached the local receiver at {where}"
    shown = "\n\n".join(_indent(slack_text(body)) for body in bodies)
    return (f"Slack-format messages ({len(bodies)}), captured by the local receiver at "
            f"{where}; saved in {saved}:\n{shown}")


def _indent(text: str) -> str:
    return "\n".join(f"  | {line}" for line in text.splitlines())


class SlackCapture:
    """The local receiver at ``where`` and, once started, the notifier posting to it."""

    def __init__(self, run: WorkerRun, receiver: Receiver, where: str, web_url: str) -> None:
        self.run, self.receiver, self.where, self.web_url = run, receiver, where, web_url
        self.notifier: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the notifier; once the worker is ready, so the two start-ups do not compete
        for the CPU (it reads the topics from their beginning: nothing is missed)."""
        self.notifier = start_notifier(self.run, self.where, self.web_url)

    def stop_soon(self) -> None:
        """Ask the notifier to deliver what it holds and stop, while the worker stops too;
        leaving the context waits for it."""
        if self.notifier is not None:
            self.notifier.terminate()

    async def finish(self, console: Console) -> None:
        """Wait for the notifier to stop; print the thread and save it as JSON."""
        if self.notifier is not None:
            await stop_notifier(self.notifier)
        saved = Path(".rollguard/runs") / f"{self.run.run_id}-slack.json"
        saved.write_bytes(orjson.dumps(self.receiver.bodies("slack"), option=orjson.OPT_INDENT_2))
        console.print(thread_report(self.receiver, self.where, saved), soft_wrap=True,
                      markup=False, highlight=False)


@contextlib.asynccontextmanager
async def capture_slack(run: WorkerRun, state: DemoState, console: Console,
                        web_url: str) -> AsyncIterator[SlackCapture]:
    """A local receiver for the notifier's messages: each shows in ``state.slack`` as it
    arrives; the whole thread is printed (and saved) at the end. Enter it before the worker's
    context, so that the worker stops while the notifier delivers its last messages."""
    loop = asyncio.get_running_loop()

    def arrived(path: str, body: bytes) -> None:  # called from the receiver's thread
        loop.call_soon_threadsafe(state.slack.append, slack_text(orjson.loads(body)))

    with receiving(Receiver(on_post=arrived)) as (receiver, base):
        capture = SlackCapture(run, receiver, f"{base}/slack", web_url)
        console.print(f"the notifier posts Slack-format messages to a local receiver at "
                      f"{capture.where}")
        try:
            yield capture
        finally:
            if capture.notifier is not None:  # None: the worker never became ready
                await capture.finish(console)
