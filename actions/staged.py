"""The commands of a staged rollback (:mod:`rollguard.detectors.staging`): each step cuts the
candidate's share, the last one (0 %) rolls it back; a restore gives it its share back.

Every step is its own signed command under a deterministic idempotency key (service,
candidate and its episode, round, step), so a step decided twice (after a restart, say)
changes the pointer once. A cut carries no expected epoch: the worker decides the next step
from a pointer that may not show the last cut yet, and a cut only ever lowers the share
(``actions/plan.py`` refuses to raise one), so applying it late or twice is safe. A restore
is a compare-and-set on the epoch the worker saw: it undoes the cuts only if nobody moved
the pointer since.

>>> from rollguard.detectors.decision import Decision
>>> staged = {"rule": "error", "round": 0, "step": 1, "steps": [10.0, 0.0], "percent": 10.0}
>>> d = Decision(ts=1.0, service="chat", release="v2", action="stage", verdict="sustained",
...              to="v1", components=[], reason="worse", evidence={"staged": staged})
>>> pointer = PointerState("chat", "v1", "v1", 9, {}, candidate="v2", percent=50.0,
...                        watched_since=7)
>>> c = staged_command(d, pointer, now=10.0, secret=b"s", ttl_s=300.0)
>>> c.op, c.percent, c.idempotency_key, c.expected_epoch
('rollback', 10.0, 'chat:v2@7:staged:0:step1', None)
"""

from __future__ import annotations

from typing import Any

from rollguard.actions.commands import Command, new_command, sign
from rollguard.actions.state import PointerState
from rollguard.detectors.decision import Decision, DecisionAction


class NotStaged(Exception):
    """A staged step that has nothing to do on this pointer; its message says why."""


def share_of(pointer: PointerState) -> float | None:
    """The watched release's share of the traffic in percent; None when nothing is watched."""
    if pointer.candidate is not None:
        return pointer.percent
    return 100.0 if pointer.active != pointer.stable else None


def staged_command(decision: Decision, pointer: PointerState, now: float, secret: bytes,
                   ttl_s: float) -> Command:
    """The signed command of one step (or the restore) of a staged rollback; raises
    :class:`NotStaged` when the pointer leaves it nothing to do."""
    staged = decision.evidence["staged"]
    key = (f"{decision.service}:{decision.release}@{pointer.watched_since}:staged:"
           f"{staged['round']}")
    fields: dict[str, Any] = {
        "ttl_s": ttl_s, "reason": decision.reason,
        "evidence": {"verdict": decision.verdict, **decision.evidence}}
    by = f"rule:{staged['rule']}"
    if decision.action == DecisionAction.RESTORE:
        share = staged.get("restore_percent")
        if share is None:
            raise NotStaged("the share before the staged rollback is not known: restore it "
                            "by hand (rollguard promote --percent)")
        command = new_command(decision.service, "promote", by, now,
                              idempotency_key=f"{key}:restore", release=decision.release,
                              percent=None if share >= 100 else share,
                              expected_epoch=pointer.epoch, **fields)
        return sign(command, secret)
    percent = float(staged["percent"])
    share = share_of(pointer)
    if percent > 0 and share is not None and share <= percent:
        raise NotStaged(f"{decision.release} serves {share:g}% already, no more than this "
                        f"step's {percent:g}%: nothing to cut")
    command = new_command(decision.service, "rollback", by, now,
                          idempotency_key=f"{key}:step{staged['step']}",
                          release=decision.to or None, percent=percent, **fields)
    return sign(command, secret)
