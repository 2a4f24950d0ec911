"""The story of a service's incidents, assembled from plain records: the pointer history
(:meth:`rollguard.actions.pointer.PointerStore.history`, oldest first), the audit topic's
records of the service (in topic order), the pointer now and the policy in force. Pure: nothing
is read here.

An incident is a rollback: one decided by a rule (a ``decision`` record with a command id) or
one an operator ran (a ``rollback`` entry of the history, or a ``rollout_abort``). Its story:
when the release was deployed (a promote, or a guarded rollout's start, whose steps follow:
:mod:`rollguard.report.ramp`), the alerts about it, the decision with its evidence, the
command (who or which rule issued it, approvals), the flip with its epochs.

>>> history = [{"at": 10.0, "op": "promote", "outcome": "applied", "release": "v2",
...             "issued_by": "ana", "command_id": "p1", "epoch_before": 1, "epoch_after": 2,
...             "command": {"percent": 10.0, "reason": "deploy"}},
...            {"at": 99.0, "op": "rollback", "outcome": "applied", "release": "v1",
...             "issued_by": "rule:policy", "command_id": "c1", "epoch_before": 2,
...             "epoch_after": 3, "command": {"reason": "worse"}}]
>>> records = [{"type": "decision", "at": 98.9, "ts": 90.0, "service": "chat",
...             "release": "v2", "action": "rollback", "verdict": "sustained", "to": "v1",
...             "reason": "worse", "evidence": {"metric": "error"}, "command_id": "c1"}]
>>> [i.release for i in incidents(history, records)]
['v2']
>>> [(e.at, e.kind) for e in incidents(history, records)[0].timeline]
[(10.0, 'deployed'), (98.9, 'decision'), (99.0, 'flipped')]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollguard.report.ramp import STARTS, plan_steps, ramp_steps, started_text
from rollguard.report.steps import FLIPPED, Record, Step, command_of, number_of

ROLLBACKS = ("rollback", "rollout_abort")  # a person's abort of a rollout: back to stable


@dataclass(frozen=True)
class Incident:
    """One rollback and what led to it."""

    service: str
    release: str  # the release rolled back
    to: str  # what serves instead
    command_id: str
    issued_by: str  # a person, or ``rule:NAME``
    approved_by: str | None
    decision: dict[str, Any] | None  # the rule's decision with its full evidence
    epochs: tuple[int, int] | None  # before and after the flip; None: it did not flip
    outcome: str  # applied, refused, waiting for approval, ...
    timeline: list[Step]

    @property
    def at(self) -> float:
        return next((s.at for s in self.timeline if s.kind in ("decision", "flipped",
                                                                 "refused")),
                    self.timeline[-1].at)

    @property
    def rollout(self) -> list[Step]:
        """The guarded rollout's steps (empty: the release was not deployed by one)."""
        return [s for s in self.timeline if s.kind == "rollout" or s.details.get("rollout")]

    def seconds_between(self, first: str, then: str) -> float | None:
        """Seconds from the first step of kind ``first`` to the first of kind ``then``."""
        a = next((s.at for s in self.timeline if s.kind == first), None)
        b = next((s.at for s in self.timeline if s.kind == then), None)
        return None if a is None or b is None else b - a


def _rollback_decisions(records: Sequence[Record]) -> dict[str, Record]:
    return {str(r["command_id"]): r for r in records
            if r.get("type") == "decision" and r.get("action") == "rollback"
            and r.get("command_id")}


def incidents(history: Sequence[Record], records: Sequence[Record],
              since: float | None = None) -> list[Incident]:
    """Every incident (oldest first) whose decision or rollback came at or after ``since``."""
    decided = _rollback_decisions(records)
    rolled: dict[str, Record] = {}
    for e in history:  # a command read again is refused as a replay: its flip is the story
        known = rolled.get(command_id := str(e.get("command_id")))
        if e.get("op") in ROLLBACKS and (known is None or (
                e.get("outcome") in FLIPPED and known.get("outcome") not in FLIPPED)):
            rolled[command_id] = e
    found = []
    for command_id in {*decided, *rolled}:
        incident = _incident(command_id, decided.get(command_id), rolled.get(command_id),
                             history, records)
        if since is None or incident.at >= since:
            found.append(incident)
    return sorted(found, key=lambda i: i.at)


def _incident(command_id: str, decision: Record | None, entry: Record | None,
              history: Sequence[Record], records: Sequence[Record]) -> Incident:
    """``decision``: the rule's (None: an operator's rollback); ``entry``: the history entry
    of the command's outcome (None: nothing was carried out yet)."""
    anchor = number_of(decision or entry or {}, "at")
    release = str(decision["release"]) if decision else _candidate_before(history, anchor)
    steps = _steps(command_id, release, anchor, decision, entry, history, records)
    done, command = entry or {}, command_of(entry or {})
    if entry is not None:
        outcome = str(entry.get("outcome"))
    elif any(s.kind == "approval-needed" for s in steps):
        outcome = "waiting for approval"
    else:
        outcome = "no outcome recorded"
    flipped = done.get("outcome") in FLIPPED
    return Incident(
        service=str((decision or done).get("service") or command.get("service") or ""),
        release=release,
        to=str((decision or {}).get("to") or done.get("release") or "stable"),
        command_id=command_id,
        issued_by=str(done.get("issued_by") or _rule_of(decision)),
        approved_by=next((s.details["by"] for s in steps if s.kind == "approved"), None),
        decision=dict(decision) if decision else None,
        epochs=(int(done["epoch_before"]), int(done["epoch_after"])) if flipped else None,
        outcome=outcome, timeline=steps)


def _steps(command_id: str, release: str, anchor: float, decision: Record | None,
           entry: Record | None, history: Sequence[Record],
           records: Sequence[Record]) -> list[Step]:
    """The incident's moments in time order: the deploy of ``release``, the alerts about it
    until ``anchor`` (the decision, or the rollback), the decision, approvals, the outcome."""
    deploy = _deployment(history, release, anchor)
    start = number_of(deploy, "at") if deploy else anchor - 3600.0
    steps = [_deployed(deploy)] if deploy else []
    if deploy and deploy.get("op") == "rollout_start":
        steps += ramp_steps(history, records, release, start, anchor)
    steps += [_alert(r) for r in records if r.get("type") in ("decision", "alert")
              and r.get("action") != "rollback" and r.get("release") == release
              and start <= number_of(r, "at") <= anchor]
    if decision is not None:
        steps.append(_decided(decision))
    steps += _approvals(command_id, records, entry)
    if entry is not None:
        steps.append(_flipped(entry))
    return sorted(steps, key=lambda s: s.at)


def _rule_of(decision: Record | None) -> str:
    evidence = (decision or {}).get("evidence")
    rule = evidence.get("rule") if isinstance(evidence, Mapping) else None
    return f"rule:{rule or 'policy'}"


def _candidate_before(history: Sequence[Record], at: float) -> str:
    """The release last promoted before ``at`` (what an operator's rollback rolled back)."""
    for entry in reversed(history):
        if (entry.get("op") in STARTS and entry.get("outcome") in FLIPPED
                and number_of(entry, "at") < at):
            return str(entry.get("release") or "")
    return ""


def _deployment(history: Sequence[Record], release: str, at: float) -> Record | None:
    for entry in reversed(history):
        if (entry.get("op") in STARTS and entry.get("release") == release
                and entry.get("outcome") in FLIPPED and number_of(entry, "at") <= at):
            return entry
    return None


def _deployed(entry: Record) -> Step:
    command = command_of(entry)
    if entry.get("op") == "rollout_start":
        first = plan_steps(entry)[:1]
        return Step(number_of(entry, "at"), "deployed", started_text(entry),
                    {"by": entry.get("issued_by"), "command_id": entry.get("command_id"),
                     "rollout": True, "action": "started",
                     "percent": first[0] if first else None})
    percent = command.get("percent")
    share = f" on {percent:g} % of traffic" if isinstance(percent, int | float) and \
        percent < 100 else ""
    reason = f": {command['reason']}" if command.get("reason") else ""
    return Step(number_of(entry, "at"), "deployed",
                f"{entry.get('release')} deployed{share} by {entry.get('issued_by')} (epoch "
                f"{entry.get('epoch_before')} → {entry.get('epoch_after')}){reason}",
                {"by": entry.get("issued_by"), "percent": percent,
                 "command_id": entry.get("command_id")})


def _alert(record: Record) -> Step:
    evidence = record.get("evidence") if isinstance(record.get("evidence"), Mapping) else {}
    return Step(number_of(record, "at"), "alert",
                f"alert ({record.get('verdict')}): {record.get('reason')}",
                {"verdict": record.get("verdict"), "metric": (evidence or {}).get("metric"),
                 "event_time": record.get("ts")})


def _decided(record: Record) -> Step:
    scope = (f" ({', '.join(record['components'])} only)" if record.get("components")
             else "")
    waits = " — waits for a person's approval" if record.get("requires_approval") else ""
    return Step(number_of(record, "at"), "decision",
                f"decision ({record.get('verdict')}): roll {record.get('release')} back to "
                f"{record.get('to')}{scope}{waits}. {record.get('reason')}",
                {"event_time": record.get("ts"), "command_id": record.get("command_id")})


def _approvals(command_id: str, records: Sequence[Record], entry: Record | None) -> list[Step]:
    steps = [Step(number_of(r, "at"), "approval-needed",
                  f"the command waits for approval: {r.get('how') or ''}".strip(), {})
             for r in records if r.get("type") == "approval-needed"
             and r.get("command_id") == command_id]
    evidence = command_of(entry or {}).get("evidence")
    if isinstance(evidence, Mapping) and evidence.get("approved_by"):
        steps.append(Step(number_of(evidence, "approved_at") or number_of(entry or {}, "at"),
                          "approved", f"approved by {evidence['approved_by']}",
                          {"by": evidence["approved_by"]}))
    return steps


def _flipped(entry: Record) -> Step:
    late = f"; {entry['late']}" if entry.get("late") else ""
    if entry.get("outcome") in FLIPPED:
        return Step(number_of(entry, "at"), "flipped",
                    f"pointer flipped to {entry.get('release') or 'stable'} (epoch "
                    f"{entry.get('epoch_before')} → {entry.get('epoch_after')}), command by "
                    f"{entry.get('issued_by')}{late}", {"outcome": entry.get("outcome")})
    return Step(number_of(entry, "at"), "refused",
                f"the rollback was {entry.get('outcome')}: {entry.get('code') or ''} "
                f"{entry.get('message') or ''}".rstrip() + late,
                {"outcome": entry.get("outcome")})


def parse_since(text: str, now: float) -> float:
    """``--since``: a duration back from ``now`` (``90m``, ``2h``, ``1d``, ``30s``) or a
    date and time in ISO 8601 (UTC unless it names its offset); ValueError otherwise.

    >>> parse_since("2h", now=10_000.0), parse_since("2025-11-23T00:00:00Z", now=0.0)
    (2800.0, 1763856000.0)
    >>> parse_since("2025-11-23 01:00+01:00", now=0.0)
    1763856000.0
    >>> parse_since("yesterday", now=0.0)
    Traceback (most recent call last):
    ValueError: --since: not a duration (90m, 2h, 1d) nor an ISO 8601 time: 'yesterday'
    """
    from datetime import UTC, datetime

    from rollguard.base.config import parse_duration

    value = text.strip()
    back = parse_duration(value)
    if back is not None:
        return now - back
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since: not a duration (90m, 2h, 1d) nor an ISO 8601 time: "
                         f"{text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
