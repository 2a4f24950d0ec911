"""A record of the alerts or audit topic, read as what a person needs to hear: what happened,
the evidence in one sentence, what to do, and whether it pages someone.

Pure: a decoded record in, a :class:`Notice` (or None: nothing to tell) out.

>>> n = read_record({"type": "approval-needed", "at": 5.0, "service": "chat",
...                  "command_id": "c1", "reason": "worse",
...                  "how": "rollguard approve chat c1 --by NAME"})
>>> n.kind, n.page, n.todo
('approval-needed', 'trigger', 'rollguard approve chat c1 --by NAME')
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson

from rollguard.detectors.names import is_drill

Page = Literal["trigger", "resolve"]
Severity = Literal["info", "warning", "critical"]
RELEASE_SLOT = "<release>"  # filled in once the episode, and so the release, is known
DRILL_TODO = ("nothing: no real service is affected, this is a rehearsal of the guard on a "
              "service of its own by rollguard drill")


@dataclass(frozen=True)
class Notice:
    """One thing to tell. ``release`` is None when the record does not name it (outcomes:
    the episode is found by ``command_id``); ``repeat_key`` is shared by identical alerts."""

    kind: str
    service: str
    release: str | None
    at: float
    title: str
    evidence: str
    todo: str
    severity: Severity
    command_id: str = ""
    page: Page | None = None
    repeat_key: str = ""
    fingerprint: str = ""

    def placed(self, release: str) -> Notice:
        """This notice in the episode of ``release``: a notice that did not name its release
        (an outcome) now does, in its text too."""
        if self.release is not None:
            return self
        return replace(self, release=release,
                       todo=self.todo.replace(RELEASE_SLOT, release or "RELEASE"))


def fingerprint(record: dict[str, Any]) -> str:
    """Identity of a record: an alert and its audit twin (``alert``/``decision`` with the same
    fields) and a redelivered record share it.

    >>> fingerprint({"type": "alert", "at": 1}) == fingerprint({"at": 1, "type": "decision"})
    True
    """
    kind = "decision" if record.get("type") == "alert" else record.get("type")
    return orjson.dumps({**record, "type": kind}, option=orjson.OPT_SORT_KEYS).decode()


def read_record(record: dict[str, Any]) -> Notice | None:
    """The notice of one record of the alerts or audit topic; None for records of no concern
    (an unknown type, an outcome of a command that changed nothing for anybody)."""
    kind = record.get("type")
    reader = _READERS.get(kind if isinstance(kind, str) else "")
    if reader is None:
        return None
    notice = reader(record)
    if notice is None:
        return None
    if is_drill(notice.service):
        notice = drilled(notice)
    return replace(notice, fingerprint=fingerprint(record))


def drilled(notice: Notice) -> Notice:
    """A notice about a drill service: marked as a drill, paging nobody, nothing to do.

    >>> n = drilled(Notice("rolled-back", "rollguard-drill", None, 1.0, "Rolled back", "",
    ...                    "re-release", "info", page="resolve"))
    >>> n.title, n.page
    ('[drill] Rolled back', None)
    """
    return replace(notice, title=f"[drill] {notice.title}", page=None, todo=DRILL_TODO)


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    return "" if value is None else str(value)


def _at(record: dict[str, Any]) -> float:
    value = record.get("at", record.get("ts", 0.0))
    return float(value) if isinstance(value, int | float) else 0.0


def _decision(record: dict[str, Any]) -> Notice | None:
    service, release = _text(record, "service"), _text(record, "release")
    found = record.get("evidence")
    evidence: dict[str, Any] = found if isinstance(found, dict) else {}
    metric = _text(evidence, "metric") or "several metrics"
    verdict = _text(record, "verdict")
    staged = evidence.get("staged")
    if record.get("action") in ("stage", "restore") and isinstance(staged, dict):
        return _staged(record, staged) if record.get("command_id") else None
    if verdict == "held":
        return None  # part of a fleet-wide incident: its one fleet alert tells it
    if verdict == "fleet":
        named = evidence.get("fleet", {}).get("services", [])
        return Notice(
            kind="alert", service=service, release=release, at=_at(record),
            title=f"Fleet-wide incident: {metric} moved at once on {len(named)} services",
            evidence=_text(record, "reason"), severity="warning",
            todo=("look upstream (a provider, a shared model, index or tool): the candidates "
                  "of these services are held, not rolled back; one that stays worse after "
                  "the incident is judged again"),
            repeat_key=f"fleet:{metric}")
    if record.get("action") != "rollback":
        return Notice(
            kind="alert", service=service, release=release, at=_at(record),
            title=f"{verdict.capitalize()} regression of {metric} in {release}",
            evidence=_text(record, "reason"), severity="warning",
            todo=(f"nothing yet: a sustained regression rolls back on its own; to end the "
                  f"canary now: rollguard rollback {service} --reason '...'"),
            repeat_key=f"alert:{verdict}:{metric}")
    if not record.get("command_id"):
        return None  # a rollback without a command comes with its rollback-suppressed record
    scope = f" ({', '.join(record['components'])} only)" if record.get("components") else ""
    waits = bool(record.get("requires_approval"))
    return Notice(
        kind="rollback-decided", service=service, release=release, at=_at(record),
        title=(f"Rollback of {release} to {_text(record, 'to') or 'stable'}{scope} "
               + ("waits for approval" if waits else "decided")),
        evidence=_text(record, "reason"), severity="critical", command_id=record["command_id"],
        todo=("approve it (see below) or leave it" if waits else "nothing: the rollback is under "
              "way; the next message says when the pointer flipped"),
        page="trigger")


def _staged(record: dict[str, Any], staged: dict[str, Any]) -> Notice:
    """A step of a staged rollback: a cut (judged again at the new share) or a restore.

    >>> n = _staged({"type": "decision", "service": "chat", "release": "v2", "at": 1.0,
    ...              "action": "stage", "command_id": "c1", "reason": "worse"},
    ...             {"rule": "error", "step": 1, "steps": [10.0, 0.0], "percent": 10.0})
    >>> n.title
    'v2 cut to 10% of the traffic (step 1 of 2) and judged again there'
    >>> n.todo
    'to hold it at 10%: rollguard pin chat; to roll it back now: rollguard rollback chat'
    """
    service, release = _text(record, "service"), _text(record, "release")
    percent = float(staged.get("percent") or 0.0)
    if record.get("action") == "stage":
        steps = staged.get("steps")
        where = f" (step {staged.get('step')} of {len(steps)})" if isinstance(steps, list) else ""
        return Notice(
            kind="stage-cut", service=service, release=release, at=_at(record),
            title=f"{release} cut to {percent:g}% of the traffic{where} and judged again there",
            evidence=_text(record, "reason"), severity="warning",
            command_id=_text(record, "command_id"),
            todo=(f"to hold it at {percent:g}%: rollguard pin {service}; to roll it back now: "
                  f"rollguard rollback {service}"))
    share = staged.get("restore_percent")
    back = "its share" if share is None else f"its {float(share):g}% of the traffic"
    return Notice(
        kind="restore-decided", service=service, release=release, at=_at(record),
        title=f"{release} recovered at {percent:g}% and gets {back} back",
        evidence=_text(record, "reason"), severity="info", command_id=_text(record, "command_id"),
        todo=(f"nothing: {release} is judged afresh at its share; to end the canary anyway: "
              f"rollguard rollback {service}"))


def _suppressed(record: dict[str, Any]) -> Notice | None:
    service, release, why = (_text(record, k) for k in ("service", "release", "why"))
    found = record.get("evidence")
    staged = found.get("staged") if isinstance(found, dict) else None
    if record.get("action") == "restore":
        share = staged.get("restore_percent") if isinstance(staged, dict) else None
        return Notice(
            kind="restore-suppressed", service=service, release=release, at=_at(record),
            title=f"{release} recovered, but its share was not given back: {why}",
            evidence=_text(record, "reason"), severity="info", repeat_key=f"suppressed:{why}",
            todo=(f"to give it back by hand: rollguard promote {service} {release} --percent "
                  f"{'N' if share is None else format(float(share), 'g')}"
                  + (" --force" if "pinned" in why else "")))
    what = "Rollback"
    if record.get("action") == "stage" and isinstance(staged, dict):
        what = f"Cut to {float(staged.get('percent') or 0.0):g}%"
    pinned = "pinned" in why
    return Notice(
        kind="rollback-suppressed", service=service, release=release, at=_at(record),
        title=f"{what} of {release} not carried out: {why}",
        evidence=_text(record, "reason"), severity="critical" if pinned else "info",
        todo=(f"the service is pinned: to roll back anyway: rollguard rollback {service} --force "
              f"--reason '...'" if pinned else "nothing: no pointer was changed"),
        page="trigger" if pinned else None, repeat_key=f"suppressed:{why}")


def _approval_needed(record: dict[str, Any]) -> Notice:
    service, command_id = _text(record, "service"), _text(record, "command_id")
    how = _text(record, "how") or f"rollguard approve {service} {command_id} --by NAME"
    return Notice(
        kind="approval-needed", service=service, release=None, at=_at(record),
        title=f"A rollback of {service} waits for a person's approval",
        evidence=_text(record, "reason"), severity="critical", command_id=command_id,
        todo=how, page="trigger")


def _approval_recorded(record: dict[str, Any]) -> Notice:
    """One approver of several said yes; the rollback waits for the others.

    >>> n = _approval_recorded({"service": "chat", "command_id": "c1", "by": "ana",
    ...                         "approvers": ["ana"], "needed": 2})
    >>> n.title, n.todo
    ('ana approved the rollback of chat: it waits for 1 more approver', 'rollguard approve chat c1')
    """
    service, command_id = _text(record, "service"), _text(record, "command_id")
    approvers = record.get("approvers")
    more = int(record.get("needed") or 0) - (len(approvers) if isinstance(approvers, list) else 0)
    return Notice(
        kind="approval-recorded", service=service, release=None, at=_at(record),
        title=f"{_text(record, 'by')} approved the rollback of {service}: it waits for "
              f"{more} more approver{'s' if more != 1 else ''}",
        evidence=_text(record, "message"), severity="warning", command_id=command_id,
        todo=f"rollguard approve {service} {command_id}")


def _outcome(record: dict[str, Any]) -> Notice | None:
    service, op, status = (_text(record, k) for k in ("service", "op", "status"))
    at, command_id = _at(record), _text(record, "command_id")
    by = f", approved by {record['approved_by']}" if record.get("approved_by") else ""
    if status in ("applied", "already_applied"):
        if _text(record, "issued_by").startswith("rule:") and (
                op == "promote" or (op == "rollback" and record.get("percent"))):
            return _share_changed(record)
        if op != "rollback":
            return None  # a promote or pin issued through the topic: nobody's alarm
        return Notice(
            kind="rolled-back", service=service, release=None, at=at, command_id=command_id,
            title=f"Rolled back: the pointer of {service} flipped",
            evidence=(f"epoch {record.get('epoch_before')} → {record.get('epoch_after')}{by}; "
                      f"{_text(record, 'reason') or _text(record, 'message')}"),
            severity="info", page="resolve",
            todo=(f"after a fix, re-release: rollguard promote {service} {RELEASE_SLOT} "
                  "--percent 10"))
    what = "lost a race" if status == "conflict" else "was refused"
    return Notice(
        kind=f"command-{status or 'refused'}", service=service, release=None, at=at,
        command_id=command_id,
        title=f"The {op or 'command'} of {service} {what}",
        evidence=_text(record, "message") or _text(record, "code"), severity="critical",
        todo=f"see what happened to the pointer: rollguard history {service}",
        page="trigger" if op == "rollback" else None)


def _share_changed(record: dict[str, Any]) -> Notice:
    """A rule's cut of a candidate's share (a staged rollback's step short of 0 %), or its
    restore of the share: the pointer changed, nothing to do."""
    service, cut = _text(record, "service"), record.get("op") == "rollback"
    return Notice(
        kind="stage-applied" if cut else "restored", service=service, release=None,
        at=_at(record), command_id=_text(record, "command_id"), severity="info",
        title=f"{'Cut' if cut else 'Share given back'}: {_text(record, 'message') or service}",
        evidence=f"epoch {record.get('epoch_before')} → {record.get('epoch_after')}",
        todo=("nothing: the next message says whether it recovers or is rolled back" if cut
              else "nothing: the canary goes on"))


def _command_refused(record: dict[str, Any]) -> Notice:
    return Notice(
        kind="command-refused", service="", release=None, at=_at(record),
        title="A message on the commands topic was refused", evidence=_text(record, "why"),
        severity="warning", todo="find who sends malformed or unsigned commands",
        repeat_key=f"refused:{_text(record, 'code')}")


def _share(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    return format(float(value), "g") if isinstance(value, int | float) else "?"


def _rollout(record: dict[str, Any]) -> Notice | None:
    """A guarded rollout's news (actions/ramping.py): moved, held, waiting, paused, over."""
    service, release, action = (_text(record, k) for k in ("service", "release", "action"))
    at, pct, to = _at(record), _share(record, "percent"), _share(record, "to_percent")
    status = f"rollguard rollout status {service}"
    told: dict[str, tuple[str, str, Severity]] = {
        "advance": (f"{release} moved on to {to}% of {service}", "nothing", "info"),
        "hold": (f"Rollout of {release} holds at {pct}%",
                 f"see why: {status}; to go on anyway: rollguard rollout approve {service}; "
                 f"to stop: rollguard rollout abort {service}", "warning"),
        "await_approval": (f"Rollout of {release} waits for approval of {to}%",
                           f"rollguard rollout approve {service} --by NAME", "warning"),
        "pause": (f"Rollout of {release} paused at {pct}%",
                  f"rollguard rollout resume {service}, or abort {service}", "warning"),
        "abort": (f"Rollout of {release} ended at {pct}%",
                  f"nothing: {release} goes no further; to see why: {status}", "warning"),
        "stable": (f"{release} is stable on {service}", "nothing", "info"),
    }
    if action not in told:
        return None
    title, todo, severity = told[action]
    return Notice(kind=f"rollout-{action}", service=service, release=release, at=at,
                  title=title, evidence=_text(record, "reason"), todo=todo,
                  severity=severity, repeat_key=f"rollout:{action}:{pct}")


_READERS: dict[str, Any] = {
    "rollout": _rollout,
    "alert": _decision,
    "decision": _decision,
    "rollback-suppressed": _suppressed,
    "approval-needed": _approval_needed,
    "approval-recorded": _approval_recorded,
    "outcome": _outcome,
    "command-refused": _command_refused,
}
