"""What a guarded rollout's verdicts mean for the pointer: the worker's side of a rollout.

Pure: a service's monitor, its pointer (with the rollout stored in it, actions/rollout.py),
the wall-clock time and the secret in; the messages to send out. Per closed bucket of the
candidate (:meth:`ServiceMonitor.drain_ramp`), the monitor's :class:`RolloutRun` first takes
in what people did (pause, resume, finish, approve: the pointer says so), then its ramp
judges the bucket and :func:`steer` carries the verdict out:

* ``advance``: a signed ``ramp`` command to the plan's next step, a compare-and-set on the
  epoch it was decided at (apply.lua checks it against the stored plan);
* ``abort``: on a sustained regression the rule's own decision stands (its rollback is
  already on its way); past a step's limit (``on_limit: abort``) a rollback command;
* ``stable``: the release marked stable (the existing ``mark_stable`` op);
* ``hold``, ``await_approval``, ``pause``: announced on the alerts topic, nothing moves.

A pinned service never moves: its buckets are not judged, and the hold is told once. Every
verdict that is news goes to the audit topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rollguard.actions.commands import Command, new_command, sign
from rollguard.actions.rollout import Rollout, rollout_of
from rollguard.actions.state import PointerState
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.names import drill_mark
from rollguard.detectors.rollout import PAUSED, ROLLING, RampAction, RampBucket, RampVerdict
from rollguard.detectors.rollout_run import RolloutRun

ISSUER = "rule:rollout"
ALERTING = (RampAction.HOLD, RampAction.AWAIT_APPROVAL, RampAction.PAUSE, RampAction.ABORT,
            RampAction.STABLE, RampAction.ADVANCE)


@dataclass
class Steered:
    """What to send, keyed by the service: the records of verdicts that are news (for the
    audit topic; those in ``alerts`` for the alerts topic too) and signed commands."""

    records: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)


def steer(monitor: ServiceMonitor, pointer: PointerState | None, now: float, secret: bytes,
          ttl_s: float) -> Steered:
    """Carry a service's guarded rollout forward on the buckets its monitor closed."""
    out = Steered()
    current = rollout_of(pointer)
    if pointer is None or current is None:
        monitor.rollout, monitor.measure_ramp = None, False
        monitor.drain_ramp()
        return out
    monitor.measure_ramp = True
    width = monitor.policy.bucket_seconds
    for bucket in monitor.drain_ramp():
        run = monitor.rollout
        if run is None or run.id != current.id:
            # seen: the start itself, so that a pause made before any bucket is taken in
            run = monitor.rollout = RolloutRun.begin(
                current.id, current.rollout_plan(), monitor.policy, bucket.ts - width,
                current.id)
        _judge(run, current, pointer, bucket, now, secret, ttl_s, out)
    return out


def _judge(run: RolloutRun, current: Rollout, pointer: PointerState, bucket: RampBucket,
           now: float, secret: bytes, ttl_s: float, out: Steered) -> None:
    """One closed bucket of the candidate into ``run``, and its verdict carried out."""
    ramp = run.ramp
    for verdict in _take_in(run, current, pointer, bucket.ts):
        _tell(verdict, current, pointer, now, out)
    if ramp.ended or run.sent_epoch:
        return  # over, or a move is on its way: the pointer will say where it stands
    if pointer.pinned:
        if run.held != "pinned":
            run.held = "pinned"
            _tell(RampVerdict(RampAction.HOLD, ramp.percent, ramp.step + 1,
                              f"{pointer.service} is pinned: the rollout holds at "
                              f"{ramp.percent:g}% until it is unpinned"), current, pointer,
                  now, out)
        return
    run.held = ""
    verdict = ramp.observe_bucket(bucket)
    _tell(verdict, current, pointer, now, out)
    if verdict.action == RampAction.ADVANCE and verdict.to_percent is not None:
        out.commands.append(ramp_command(current, pointer, verdict, now, secret, ttl_s))
        run.sent_epoch = pointer.epoch
    elif verdict.action == RampAction.STABLE:
        out.commands.append(_closing(current, pointer, "mark_stable", verdict, now, secret,
                                     ttl_s))
    elif verdict.action == RampAction.ABORT and not any(
            r.action in ROLLING for r in bucket.regressions):
        # past the step's limit: no rule decided anything, so the rollout rolls back itself
        out.commands.append(_closing(current, pointer, "rollback", verdict, now, secret,
                                     ttl_s))


def _take_in(run: RolloutRun, current: Rollout, pointer: PointerState,
             ts: float) -> list[RampVerdict]:
    """What changed on the pointer since the ramp last looked: a person's command, or the
    step the share stands at (a move applied, refused, or made by a person)."""
    ramp, said = run.ramp, []
    last = current.last
    if last.get("command_id") != run.seen and not ramp.ended:
        run.seen = str(last.get("command_id", ""))
        who = str(last.get("by", ""))
        if last.get("op") == "pause" and ramp.status != PAUSED:
            said.append(ramp.pause(ts, who))
        elif last.get("op") == "resume" and ramp.status == PAUSED:
            said.append(ramp.resume(ts, who))
    in_flight = run.sent_epoch == pointer.epoch and ramp.step == current.step + 1
    if not in_flight:
        run.sent_epoch = 0
        if ramp.step != current.step and not ramp.ended:
            why = ("the move did not apply" if ramp.step > current.step
                   else f"the pointer moved it to {current.percent:g}%")
            said.append(ramp.at_step(current.step, ts, why))
    return said


def ramp_command(current: Rollout, pointer: PointerState, verdict: RampVerdict, now: float,
                 secret: bytes, ttl_s: float) -> Command:
    """The signed move to ``verdict.to_percent``: one idempotency key per rollout and step,
    so a restarted worker deciding it again never moves twice."""
    to = float(verdict.to_percent or 0.0)
    command = new_command(
        pointer.service, "ramp", ISSUER, now, ttl_s=ttl_s,
        idempotency_key=f"{pointer.service}:rollout:{current.id}:step:{current.step + 2}",
        release=current.release, percent=to, reason=verdict.reason,
        evidence={"rollout": current.id, "from": current.percent, **verdict.evidence},
        expected_epoch=pointer.epoch)
    return sign(command, secret)


def _closing(current: Rollout, pointer: PointerState, op: str, verdict: RampVerdict,
             now: float, secret: bytes, ttl_s: float) -> Command:
    """The command that ends a rollout: its release marked stable, or rolled back."""
    command = new_command(
        pointer.service, "mark_stable" if op == "mark_stable" else "rollback", ISSUER, now,
        ttl_s=ttl_s, idempotency_key=f"{pointer.service}:rollout:{current.id}:{op}",
        release=current.release if op == "mark_stable" else None, reason=verdict.reason,
        evidence={"rollout": current.id, "verdict": str(verdict.action)},
        expected_epoch=pointer.epoch)
    return sign(command, secret)


def _tell(verdict: RampVerdict, current: Rollout, pointer: PointerState, now: float,
          out: Steered) -> None:
    """A verdict that is news on the audit topic, and on the alerts topic unless a wait."""
    if not verdict.announce:
        return
    record: dict[str, Any] = {
        "type": "rollout", "at": now, "service": pointer.service, "release": current.release,
        "rollout": current.id, "action": str(verdict.action), "percent": verdict.percent,
        "step": verdict.step, "reason": verdict.reason, "to_percent": verdict.to_percent,
        "needed_events": verdict.needed_events, **drill_mark(pointer.service)}
    out.records.append(record)
    if verdict.action in ALERTING:
        out.alerts.append(record)
