"""The status page's JSON model: a pointer, its history, the audit records and the commands
waiting for approval in; plain dicts out. Pure: time is passed in, nothing is read here.

Records are those of the audit topic (every decision and every outcome, see
:mod:`rollguard.streams.messages` and :mod:`rollguard.actions.actuator`); history entries are
those of :meth:`rollguard.actions.pointer.PointerStore.history`.

>>> from rollguard.actions.state import PointerState
>>> p = PointerState("chat", active="v1", stable="v1", epoch=2, active_components={},
...                  candidate="v2", percent=50.0, watched_since=2)
>>> alert = {"type": "decision", "at": 100.0, "service": "chat", "release": "v2",
...          "action": "alert", "verdict": "transient", "reason": "a blip"}
>>> judgement(p, [alert], {}, now=130.0), judgement(p, [alert], {}, now=9_999.0)
('transient', 'watching')
>>> judgement(p, [alert], {"c1": b"{}"}, now=130.0)
'waiting for approval'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from rollguard.actions.rollout import rollout_status
from rollguard.actions.state import PointerState
from rollguard.detectors.names import is_drill

# How long a verdict stays the service's judgement without a newer one: the monitor speaks
# only when something is worth saying, so an old transient blip must fade back to watching.
RECENT_S = 600.0
JUDGEMENTS = ("ok", "watching", "transient", "sustained", "inconclusive", "fleet", "held",
              "waiting for approval")
Record = Mapping[str, Any]


def _number(record: Record, name: str) -> float:
    value = record.get(name)
    return float(value) if isinstance(value, int | float) else 0.0


def is_decision(record: Record) -> bool:
    """A decision (an alert or a rollback) about a release; ``alert`` records of the alerts
    topic are the audit topic's ``decision`` twins."""
    return record.get("type") in ("decision", "alert")


def judgement(pointer: PointerState | None, records: Sequence[Record],
              pending: Mapping[str, Any], now: float) -> str:
    """Where the judgement of the watched release stands (one of :data:`JUDGEMENTS`)."""
    if pending:
        return "waiting for approval"
    watched = pointer.watched_release if pointer is not None else None
    if watched is None:
        return "ok"
    for record in reversed(records):
        if is_decision(record) and record.get("release") == watched:
            verdict = str(record.get("verdict", ""))
            recent = now - _number(record, "at") <= RECENT_S
            return verdict if recent and verdict in JUDGEMENTS else "watching"
    return "watching"


def service_row(service: str, pointer: PointerState | None, records: Sequence[Record],
                pending: Mapping[str, Any], now: float) -> dict[str, Any]:
    """One line of the overview: what serves, what is judged, and how; ``drill``: a drill
    service (``rollguard drill``), whose every judgement is a rehearsal."""
    row: dict[str, Any] = {"service": service, "judgement": judgement(pointer, records,
                                                                      pending, now),
                           "pending": len(pending), "drill": is_drill(service)}
    if pointer is None:
        return {**row, "active": None, "stable": None, "candidate": None, "percent": 0.0,
                "pinned": False, "epoch": None, "updated_at": None, "updated_by": ""}
    return {**row, "active": pointer.active, "stable": pointer.stable,
            "candidate": pointer.candidate, "percent": pointer.percent,
            "cohorts": list(pointer.cohorts), "pinned": pointer.pinned,
            "epoch": pointer.epoch, "updated_at": pointer.updated_at,
            "updated_by": pointer.updated_by, "rollout": rollout_status(pointer, now)}


def marker(record: Record) -> dict[str, Any] | None:
    """A mark on the charts for a record that fired something; None for the others.

    >>> marker({"type": "outcome", "at": 5.0, "op": "rollback", "status": "applied",
    ...         "epoch_before": 3, "epoch_after": 4})["label"]
    'rollback applied (epoch 3 → 4)'
    """
    kind, at = record.get("type"), _number(record, "at")
    metric = _evidence(record).get("metric")
    if is_decision(record):
        rollback = record.get("action") == "rollback"
        label = f"{'ROLLBACK' if rollback else 'alert'}: {record.get('verdict', '')}"
        return {"at": at, "kind": "decision" if rollback else "alert", "label": label,
                "metric": metric}
    if kind == "outcome" and record.get("status") in ("applied", "already_applied"):
        return {"at": at, "kind": "flip", "metric": None,
                "label": f"{record.get('op')} {record.get('status')} (epoch "
                         f"{record.get('epoch_before')} → {record.get('epoch_after')})"}
    if kind == "approval-needed":
        return {"at": at, "kind": "approval", "label": "waits for approval", "metric": None}
    if kind == "rollback-suppressed":
        return {"at": at, "kind": "suppressed", "metric": metric,
                "label": f"rollback not carried out: {record.get('why', '')}"}
    return None


def _evidence(record: Record) -> Mapping[str, Any]:
    found = record.get("evidence")
    return found if isinstance(found, Mapping) else {}


def last_decision(records: Sequence[Record]) -> dict[str, Any] | None:
    """The newest decision with its evidence, preferring a rollback over later alerts."""
    decisions = [r for r in records if is_decision(r)]
    chosen = next((r for r in reversed(decisions) if r.get("action") == "rollback"),
                  decisions[-1] if decisions else None)
    if chosen is None:
        return None
    keys = ("at", "ts", "release", "action", "verdict", "to", "components", "reason",
            "command_id", "requires_approval", "dry_run")
    return {**{k: chosen.get(k) for k in keys}, "evidence": dict(_evidence(chosen))}


def history_rows(history: Iterable[Record]) -> list[dict[str, Any]]:
    """Pointer changes and refusals, newest first: when, what, who, why, epochs."""
    rows = []
    for entry in history:
        command = entry.get("command")
        command = command if isinstance(command, Mapping) else {}
        evidence = command.get("evidence")
        evidence = evidence if isinstance(evidence, Mapping) else {}
        rows.append({
            "at": entry.get("at"), "op": entry.get("op"), "outcome": entry.get("outcome"),
            "release": entry.get("release") or command.get("release"),
            "by": entry.get("issued_by"), "approved_by": evidence.get("approved_by"),
            "reason": command.get("reason") or entry.get("message") or "",
            "epoch_before": entry.get("epoch_before"), "epoch_after": entry.get("epoch_after"),
            "command_id": entry.get("command_id"), "late": entry.get("late"),
        })
    return rows[::-1]


def pending_rows(service: str, pending: Mapping[str, bytes]) -> list[dict[str, Any]]:
    """Commands waiting for a person, with the command that approves each."""
    rows = []
    for command_id, raw in sorted(pending.items()):
        try:
            command = orjson.loads(raw)
        except orjson.JSONDecodeError:
            command = {}
        command = command if isinstance(command, dict) else {}
        rows.append({"command_id": command_id, "op": command.get("op"),
                     "issued_by": command.get("issued_by"),
                     "issued_at": command.get("issued_at"), "reason": command.get("reason"),
                     "to": command.get("release"),
                     "how": f"rollguard approve {service} {command_id} --by NAME"})
    return rows


def service_page(service: str, pointer: PointerState | None, history: Sequence[Record],
                 records: Sequence[Record], pending: Mapping[str, bytes],
                 series: Mapping[str, Any], now: float) -> dict[str, Any]:
    """Everything the page shows of one service. ``series``: metric → its points
    (:meth:`rollguard.web.series.SeriesBook.of`)."""
    marks = [m for m in map(marker, records) if m is not None]
    deploys = [{"at": h["at"], "kind": "deploy", "metric": None,
                "label": f"{h['op']} {h.get('release') or ''}".strip()}
               for h in history if h.get("outcome") == "applied"
               and h.get("op") in ("promote", "rollback") and isinstance(h.get("at"), float)]
    return {
        "now": now,
        "service": service_row(service, pointer, records, pending, now),
        "metrics": [{"metric": name, **points} for name, points in sorted(series.items())],
        "markers": sorted(deploys + marks, key=lambda m: m["at"]),
        "last_decision": last_decision(records),
        "history": history_rows(history),
        "pending": pending_rows(service, pending),
        "recent": [dict(r) for r in records[-20:]][::-1],
    }
