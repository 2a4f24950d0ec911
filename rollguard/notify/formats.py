"""The bodies each destination receives: a Slack incoming-webhook message, a signed JSON
webhook, PagerDuty Events API v2 events. Pure: a message (or digest) in, JSON-ready data out.

Slack incoming webhooks answer ``ok`` and no message id, so they cannot reply in a thread or
edit a message: an episode's thread is its messages, each headed by the same line (service,
release, episode start), the first marked *new*, later ones *update*, batched and
rate-limited (:mod:`.episodes`) so a rollback makes one or two messages.

>>> import hashlib, hmac
>>> signature(b"key", b"{}") == "sha256=" + hmac.new(b"key", b"{}", hashlib.sha256).hexdigest()
True
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any
from urllib.parse import quote

from rollguard.notify.episodes import Message
from rollguard.notify.notices import Notice
from rollguard.notify.outbox import Digest, Item

SIGNATURE_HEADER = "X-Rollguard-Signature"
ICONS = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":white_check_mark:"}
PAGERDUTY_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}
_COMMAND = re.compile(r"rollguard [^;]*[^;\s]")


def signature(key: bytes, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER`: HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def status_link(web_url: str, service: str) -> str:
    """The status page of ``service``.

    >>> status_link("http://127.0.0.1:8471/", "support-bot")
    'http://127.0.0.1:8471/?service=support-bot'
    """
    return f"{web_url.rstrip('/')}/?service={quote(service)}"


def headline(message: Message) -> str:
    """The line that heads every message of an episode, so its thread reads as one.

    >>> from rollguard.notify.episodes import Episode
    >>> headline(Message(Episode("chat", "v2", 0.0), (), (), 0, first=True))
    'chat · release v2 · episode since 1970-01-01 00:00 UTC (new)'
    """
    episode = message.episode
    opened = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(episode.opened_at))
    release = f"release {episode.release}" if episode.release else "no release named"
    drill = " · DRILL: a rehearsal, paging nobody" if episode.drill else ""
    return (f"{episode.service or 'commands topic'} · {release} · episode since {opened} "
            f"({'new' if message.first else 'update'}){drill}")


def _line(notice: Notice, said: set[str]) -> str:
    """One notice in Slack's markup; evidence already in the message (``said``) not again."""
    evidence = f" — {notice.evidence}" if notice.evidence not in said else ""
    said.add(notice.evidence)
    return f"{ICONS[notice.severity]} *{notice.title}*{evidence}\n→ {_code(notice.todo)}"


def _code(todo: str) -> str:
    """Commands in a to-do shown as code, so they can be copied as they are; a command runs
    to the next ``;`` or the end.

    >>> _code("to hold it: rollguard pin chat; to end it: rollguard rollback chat")
    'to hold it: `rollguard pin chat`; to end it: `rollguard rollback chat`'
    """
    return _COMMAND.sub(lambda found: f"`{found.group(0)}`", todo)


def slack(item: Item, web_url: str) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` (the notification's fallback) and blocks."""
    if isinstance(item, Digest):
        return _slack_digest(item, web_url)
    top = max(item.notices, key=lambda n: ("info", "warning", "critical").index(n.severity))
    link = status_link(web_url, item.episode.service)
    blocks: list[dict[str, Any]] = [
        {"type": "context", "elements": [{"type": "mrkdwn", "text": headline(item)}]}]
    said = {""}
    blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": _line(n, said)}}
               for n in item.notices]
    footer = f"<{link}|Status page>"
    if item.held_back:
        footer += f" · {item.held_back} identical alert(s) held back"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    return {"text": f"{item.episode.service} {item.episode.release}: {top.title}",
            "blocks": blocks}


def _slack_digest(digest: Digest, web_url: str) -> dict[str, Any]:
    since = time.strftime("%H:%M UTC", time.gmtime(digest.since))
    lines = [f"• *{m.episode.service} {m.episode.release}*: {m.notices[-1].title} → "
             f"{_code(m.notices[-1].todo)} (<{status_link(web_url, m.episode.service)}|status>)"
             for m in digest.latest if m.notices]
    if digest.dropped:
        lines.append(f"• and {digest.dropped} more episode(s): see the status page")
    text = (f"{digest.count} notifications since {since} could not be delivered; where each "
            f"episode stands now:")
    return {"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines) or "—"}}]}


def _notice_json(notice: Notice) -> dict[str, Any]:
    return {"kind": notice.kind, "at": notice.at, "title": notice.title,
            "evidence": notice.evidence, "todo": notice.todo, "severity": notice.severity,
            "command_id": notice.command_id or None, "page": notice.page}


def _message_json(message: Message, web_url: str) -> dict[str, Any]:
    episode = message.episode
    return {"episode": {"service": episode.service, "release": episode.release,
                        "opened_at": episode.opened_at, "state": episode.state,
                        "key": episode.dedup_key, "new": message.first,
                        "drill": episode.drill},
            "notices": [_notice_json(n) for n in message.notices],
            "held_back": message.held_back, "link": status_link(web_url, episode.service)}


def webhook(item: Item, web_url: str, now: float) -> dict[str, Any]:
    """The generic webhook's JSON body; ``sent_at`` lets a receiver refuse old replays."""
    if isinstance(item, Digest):
        return {"type": "rollguard.digest", "sent_at": now, "since": item.since,
                "count": item.count, "dropped_episodes": item.dropped,
                "episodes": [_message_json(m, web_url) for m in item.latest]}
    return {"type": "rollguard.notification", "sent_at": now, **_message_json(item, web_url)}


def pagerduty(item: Item, routing_key: str, web_url: str) -> list[dict[str, Any]]:
    """The Events API v2 events of a message: one per page action, one ``dedup_key`` per
    episode. A digest sends each episode's last action only (the state it is in now)."""
    messages = item.latest if isinstance(item, Digest) else (item,)
    events = []
    for message in messages:
        for action in message.pages:
            events.append(_pagerduty_event(message, action, routing_key, web_url))
    return events


def _pagerduty_event(message: Message, action: str, routing_key: str,
                     web_url: str) -> dict[str, Any]:
    episode = message.episode
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action,
                             "dedup_key": episode.dedup_key}
    if action != "trigger":
        return event
    pager = next((n for n in message.notices if n.page == "trigger"), message.notices[-1])
    event["payload"] = {
        "summary": f"{episode.service} {episode.release}: {pager.title}"[:1024],
        "source": f"rollguard/{episode.service}", "severity": PAGERDUTY_SEVERITY[pager.severity],
        "component": episode.release, "group": episode.service, "class": pager.kind,
        "custom_details": {"evidence": pager.evidence, "todo": pager.todo,
                           "command_id": pager.command_id or None}}
    event["links"] = [{"href": status_link(web_url, episode.service), "text": "Status page"}]
    return event
