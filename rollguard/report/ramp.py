"""A guarded rollout in an incident's story: its start and its steps (moved, held, waiting
for approval, paused, resumed, aborted, finished, stable), from the pointer history (the
rollout commands of people and of ``rule:rollout``, with their outcomes) and the worker's
ramp verdicts on the audit topic (``{"type": "rollout", ...}``). Pure.

>>> history = [{"at": 10.0, "op": "rollout_start", "outcome": "applied", "release": "v2",
...             "issued_by": "ann", "command_id": "r1", "epoch_before": 1, "epoch_after": 2,
...             "message": "rollout of v2 started at 1% by ann (steps 1, 100)",
...             "command": {"evidence": {"plan": {"steps": [1, 100]}}}},
...            {"at": 99.0, "op": "ramp", "outcome": "applied", "release": "v2",
...             "issued_by": "rule:rollout", "command_id": "m1", "epoch_before": 2,
...             "epoch_after": 3, "message": "v2 now serves 100% of chat (step 2 of 2)",
...             "command": {"percent": 100.0, "evidence": {"from": 1.0}}}]
>>> [(s.at, s.details["action"], s.details["percent"]) for s in
...  ramp_steps(history, [], "v2", 10.0, 200.0)]
[(99.0, 'advanced', 100.0)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rollguard.report.steps import FLIPPED, Record, Step, command_of, number_of

STARTS = ("promote", "rollout_start")  # what deploys a release
MOVES = {"ramp": "advanced", "rollout_pause": "paused", "rollout_resume": "resumed",
         "rollout_abort": "aborted", "rollout_finish": "finished"}
# The worker's verdicts the story tells (a move is told by the history, with its epochs).
VERDICTS = {"hold": "held", "await_approval": "awaiting approval", "pause": "paused",
            "abort": "aborted", "stable": "stable"}


def plan_steps(entry: Record) -> list[float]:
    """The steps of the plan a ``rollout_start`` entry signed (empty: none given)."""
    evidence = command_of(entry).get("evidence")
    plan = evidence.get("plan") if isinstance(evidence, Mapping) else None
    steps = plan.get("steps") if isinstance(plan, Mapping) else None
    return [float(s) for s in steps] if isinstance(steps, list) else []


def started_text(entry: Record) -> str:
    """The deploy line of a guarded rollout's start."""
    steps = ", ".join(f"{s:g}" for s in plan_steps(entry)) or "the policy's"
    first = plan_steps(entry)[:1]
    share = f" on {first[0]:g} % of traffic" if first else ""
    return (f"{entry.get('release')}'s guarded rollout started{share} by "
            f"{entry.get('issued_by')} (steps {steps} %; epoch {entry.get('epoch_before')} → "
            f"{entry.get('epoch_after')})")


def ramp_steps(history: Sequence[Record], records: Sequence[Record], release: str,
               start: float, end: float) -> list[Step]:
    """The rollout's steps after its start at ``start`` and before ``end`` (the incident's
    decision or rollback), in time order: the history's rollout commands (but the start) and
    the worker's verdicts about ``release`` that are not moves."""
    steps = [_moved(e) for e in history if e.get("op") in MOVES
             and start < number_of(e, "at") < end]
    steps += [_verdict(r) for r in records if r.get("type") == "rollout"
              and r.get("release") == release and r.get("action") in VERDICTS
              and start <= number_of(r, "at") <= end]
    return sorted(steps, key=lambda s: s.at)


def _moved(entry: Record) -> Step:
    op, command = str(entry.get("op")), command_of(entry)
    action = MOVES[op]
    evidence = command.get("evidence")
    moved_from = evidence.get("from") if isinstance(evidence, Mapping) else None
    percent = command.get("percent") if op == "ramp" else moved_from
    details = {"action": action, "percent": percent, "by": entry.get("issued_by"),
               "outcome": entry.get("outcome")}
    message = str(entry.get("message") or f"{op} by {entry.get('issued_by')}")
    if entry.get("outcome") in FLIPPED:
        return Step(number_of(entry, "at"), "rollout",
                    f"rollout {action}: {message} — by {entry.get('issued_by')} (epoch "
                    f"{entry.get('epoch_before')} → {entry.get('epoch_after')})", details)
    details["action"] = f"{action}: {entry.get('outcome')}"
    return Step(number_of(entry, "at"), "rollout",
                f"rollout {op.removeprefix('rollout_')} by {entry.get('issued_by')} "
                f"{entry.get('outcome')} ({entry.get('code') or ''}): {message}", details)


def _verdict(record: Record) -> Step:
    action = VERDICTS[str(record.get("action"))]
    percent = record.get("percent")
    at = f" at {percent:g} %" if isinstance(percent, int | float) else ""
    return Step(number_of(record, "at"), "rollout", f"rollout {action}{at}: "
                f"{record.get('reason')}", {"action": action, "percent": percent,
                                             "by": "rule:rollout"})
