"""An incident report as Markdown, HTML or JSON: the incidents of :mod:`rollguard.report.story`,
the pointer now and the policy in force. Pure: everything is passed in, times too."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from rollguard.actions.state import PointerState
from rollguard.detectors.explain import describe, tolerance_text
from rollguard.detectors.names import drill_mark, is_drill
from rollguard.detectors.policy import Policy
from rollguard.report.story import Incident, Step

FORMATS = ("md", "html", "json")
# The evidence fields a person reads first; the rest follow in their own order.
EVIDENCE_FIRST = ("metric", "statistic", "baseline", "candidate", "tolerance",
                  "baseline_samples", "candidate_samples", "duration_s", "llr", "threshold")


@dataclass(frozen=True)
class Report:
    service: str
    generated_at: float
    pointer: PointerState | None
    policy: Policy
    policy_source: str  # the file, or "the shipped default"
    audit_topic: str
    incidents: list[Incident]
    charts: dict[str, str] = field(default_factory=dict)  # command id -> image path


def utc(at: float | None, seconds: bool = True) -> str:
    """A wall-clock time as people read it in a report.

    >>> utc(1_763_856_000.25), utc(None)
    ('2025-11-23 00:00:00.250 UTC', '-')
    """
    if at is None:
        return "-"
    shown = datetime.fromtimestamp(at, UTC)
    return shown.strftime("%Y-%m-%d %H:%M:%S") + (f".{shown.microsecond // 1000:03d}"
                                                   if seconds else "") + " UTC"


def pointer_text(pointer: PointerState | None) -> str:
    if pointer is None:
        return "no pointer (nothing promoted yet)"
    staged = (f", candidate {pointer.candidate} on {pointer.percent:g} %"
              if pointer.candidate else ", no candidate")
    return (f"active {pointer.active}, stable {pointer.stable}{staged}; epoch {pointer.epoch}"
            f"{'; pinned' if pointer.pinned else ''}; last changed {utc(pointer.updated_at)} "
            f"by {pointer.updated_by or '?'}")


def policy_rows(policy: Policy) -> list[dict[str, str]]:
    """One row per metric rule and composite: what is measured, tolerance, action."""
    rows = [{"rule": rule.name, "measures": describe(rule),
             "tolerance": tolerance_text(rule), "action": str(rule.action),
             "critical": "yes" if rule.critical else "no (acts via composites)",
             "components": ", ".join(rule.components) or "all"}
            for rule in policy.metrics.values()]
    rows += [{"rule": c.name, "measures": f"at least {c.at_least} of {', '.join(c.metrics)}",
              "tolerance": f"{c.evidence:g} x the evidence threshold each",
              "action": str(c.action), "critical": "composite",
              "components": ", ".join(c.components) or "all"} for c in policy.composites]
    return rows


def policy_line(policy: Policy) -> str:
    return (f"policy {policy.name!r}: buckets of {policy.bucket_seconds:g} s, evidence "
            f"threshold {policy.evidence_threshold:g}, blips up to {policy.blip_seconds:g} s "
            f"are left out, baseline half-life {policy.baseline_half_life_seconds:g} s")


def _value(value: Any, name: str = "") -> str:
    if name == "since" and isinstance(value, int | float):
        return f"{utc(value, False)} (event time)"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


def evidence_rows(decision: dict[str, Any] | None) -> list[tuple[str, str]]:
    evidence = dict((decision or {}).get("evidence") or {})
    order = [k for k in EVIDENCE_FIRST if k in evidence] + [
        k for k in evidence if k not in EVIDENCE_FIRST]
    return [(k, _value(evidence[k], k)) for k in order]


def _durations(incident: Incident) -> list[tuple[str, float]]:
    pairs = (("deployed → first alert", "deployed", "alert"),
             ("deployed → decision", "deployed", "decision"),
             ("first alert → decision", "alert", "decision"),
             ("decision → pointer flipped", "decision", "flipped"),
             ("waiting for approval", "approval-needed", "approved"))
    found = [(label, incident.seconds_between(a, b)) for label, a, b in pairs]
    return [(label, s) for label, s in found if s is not None]


def _step_text(step: Step) -> str:
    """A step's line; a decision names its event time too (the monitor's clock)."""
    event_time = step.details.get("event_time")
    if step.kind == "decision" and isinstance(event_time, int | float):
        return f"{step.text} (event time {utc(event_time, False)})"
    return step.text


def _ramp_row(step: Step) -> dict[str, Any]:
    """A step of a guarded rollout: when, at which share (``"5 %"``), what, and by whom."""
    percent = step.details.get("percent")
    return {"at": step.at, "action": step.details.get("action"),
            "percent": f"{percent:g} %" if isinstance(percent, int | float) else "",
            "by": step.details.get("by"), "text": step.text}


def _title(incident: Incident) -> str:
    title = (f"{incident.release} rolled back to {incident.to}"
             if incident.epochs else f"rollback of {incident.release}: {incident.outcome}")
    return f"drill: {title}" if is_drill(incident.service) else title


DRILL_NOTE = ("A drill service: every rollback below is a rehearsal of the guard by "
              "`rollguard drill`, on its own service with synthetic traffic, not an incident.")


def _drill_note(service: str) -> list[str]:
    """The line that tells a drill service's report from an incident report."""
    return [f"**{DRILL_NOTE}**", ""] if is_drill(service) else []


def as_json(report: Report) -> str:
    body = {"service": report.service, "generated_at": report.generated_at,
            "now": pointer_text(report.pointer),
            "pointer": None if report.pointer is None else asdict(report.pointer),
            "policy": {"source": report.policy_source, "summary": policy_line(report.policy),
                       "rules": policy_rows(report.policy)},
            "audit_topic": report.audit_topic, **drill_mark(report.service),
            "incidents": [{**asdict(i), "title": _title(i),
                           "durations_s": dict(_durations(i)),
                           "rollout": [_ramp_row(s) for s in i.rollout],
                           "chart": report.charts.get(i.command_id)}
                          for i in report.incidents]}
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def as_markdown(report: Report) -> str:
    lines = [f"# Incident report: {report.service}", "",
             f"Generated {utc(report.generated_at, False)} from the pointer history in Redis "
             f"and the audit topic `{report.audit_topic}`.", "",
             f"**Now:** {pointer_text(report.pointer)}.", "", *_drill_note(report.service)]
    if not report.incidents:
        lines += ["No rollback in the range.", ""]
    for number, incident in enumerate(report.incidents, 1):
        lines += _incident_markdown(number, incident, report.charts.get(incident.command_id))
    lines += ["## Policy in force", "", f"From {report.policy_source}: "
              f"{policy_line(report.policy)}.", "",
              "| rule | measures | tolerance | action | acts alone | components |",
              "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['rule']} | {r['measures']} | {r['tolerance']} | {r['action']} | "
              f"{r['critical']} | {r['components']} |" for r in policy_rows(report.policy)]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _incident_markdown(number: int, incident: Incident, chart: str | None) -> list[str]:
    approval = f", approved by {incident.approved_by}" if incident.approved_by else ""
    epochs = (f"epoch {incident.epochs[0]} → {incident.epochs[1]}" if incident.epochs
              else incident.outcome)
    lines = [f"## Incident {number}: {_title(incident)} ({utc(incident.at, False)})", "",
             f"Command `{incident.command_id}` issued by {incident.issued_by}{approval}; "
             f"{epochs}.", "", "| when | what |", "| --- | --- |"]
    lines += [f"| {utc(step.at)} | {_md(_step_text(step))} |" for step in incident.timeline]
    lines.append("")
    if incident.epochs:
        lines += ["Servers following the pointer: not recorded by rollguard (each "
                  "`PointerReader` calls its `on_change` within milliseconds of the flip).", ""]
    durations = _durations(incident)
    if durations:
        lines += [", ".join(f"{label}: {seconds:.3f} s" if seconds < 10 else
                            f"{label}: {seconds:.0f} s" for label, seconds in durations) + ".",
                  ""]
    if incident.rollout:
        lines += [f"### The guarded rollout of {incident.release}", "",
                  "| when | step | what |", "| --- | ---: | --- |"]
        lines += [f"| {utc(r['at'])} | {r['percent']} | {r['action']} by {r['by']} |"
                  for r in map(_ramp_row, incident.rollout)] + [""]
    rows = evidence_rows(incident.decision)
    if rows:
        lines += ["### Evidence of the decision", "", "| field | value |", "| --- | --- |"]
        lines += [f"| {k} | {_md(v)} |" for k, v in rows] + [""]
    if chart:
        lines += [f"![each metric of {incident.release} against the baseline]({chart})", ""]
    return lines


def as_html(report: Report) -> str:
    """The Markdown's content as a standalone page (no scripts, no external resources)."""
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Incident "
             f"report: {e(report.service)}</title><style>{STYLE}</style></head><body>",
             f"<h1>Incident report: {e(report.service)}</h1>",
             f"<p>Generated {e(utc(report.generated_at, False))} from the pointer history in "
             f"Redis and the audit topic <code>{e(report.audit_topic)}</code>.</p>",
             f"<p><b>Now:</b> {e(pointer_text(report.pointer))}.</p>",
             f"<p><b>{e(DRILL_NOTE)}</b></p>" if is_drill(report.service) else ""]
    if not report.incidents:
        parts.append("<p>No rollback in the range.</p>")
    for number, incident in enumerate(report.incidents, 1):
        parts.append(f"<h2>Incident {number}: {e(_title(incident))} "
                     f"({e(utc(incident.at, False))})</h2>")
        approval = f", approved by {incident.approved_by}" if incident.approved_by else ""
        parts.append(f"<p>Command <code>{e(incident.command_id)}</code> issued by "
                     f"{e(incident.issued_by)}{e(approval)}; {e(incident.outcome)}.</p>")
        parts.append(_table(("when", "what"), [(utc(s.at), _step_text(s))
                                               for s in incident.timeline]))
        durations = ", ".join(f"{label}: {seconds:.3f} s" for label, seconds in
                              _durations(incident))
        parts.append(f"<p>{e(durations)}</p>" if durations else "")
        if incident.rollout:
            parts += [f"<h3>The guarded rollout of {e(incident.release)}</h3>",
                      _table(("when", "step", "what"),
                             [(utc(r["at"]), r["percent"], f"{r['action']} by {r['by']}")
                              for r in map(_ramp_row, incident.rollout)])]
        rows = evidence_rows(incident.decision)
        if rows:
            parts += ["<h3>Evidence of the decision</h3>", _table(("field", "value"), rows)]
        chart = report.charts.get(incident.command_id)
        if chart:
            parts.append(f"<p><img src='{e(chart)}' alt='metrics' style='max-width:100%'></p>")
    rules = policy_rows(report.policy)
    parts += ["<h2>Policy in force</h2>",
              f"<p>From {e(report.policy_source)}: {e(policy_line(report.policy))}.</p>",
              _table(tuple(rules[0]) if rules else (), [tuple(r.values()) for r in rules]),
              "</body></html>"]
    return "\n".join(p for p in parts if p) + "\n"


def _table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    e = html.escape
    cells = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


STYLE = ("body{font:14px/1.45 system-ui,sans-serif;max-width:70em;margin:1em auto;"
         "color:#1d2230}table{border-collapse:collapse;margin:.4em 0}td,th{text-align:left;"
         "padding:.2em .6em;border-bottom:1px solid #e3e5ea;vertical-align:top}"
         "code{background:#eef0f3;padding:0 .3em}")


RENDERERS = {"md": as_markdown, "html": as_html, "json": as_json}
