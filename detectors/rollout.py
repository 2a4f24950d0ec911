"""A guarded rollout: a release taken forward step by step on evidence that it is no worse
than the stable release, and back on evidence that it is worse.

Fed once per closed bucket with the candidate's non-inferiority readings
(:func:`detectors.noninferiority.step_readings`) and the sustained regressions the monitor
found in it (:func:`regressions_of` its decisions), a :class:`Ramp` says what to do:

* ``advance`` to the next step when, after ``min_seconds`` at the step, every metric whose
  rule could roll back has ``min_samples`` and evidence of non-inferiority at the policy's
  ``evidence_threshold`` (:mod:`detectors.ramp_step`); never on the absence of alarms, never
  with a metric that had no data, never past a step;
* ``await_approval`` instead, when the next step is one of ``approval_before``;
* ``hold`` when the traffic at the step cannot bring the evidence within ``limit_seconds``
  (why, and how many samples it needs), and past the limit when ``on_limit`` is ``hold``;
* ``abort`` past the limit when ``on_limit`` is ``abort``, or on a sustained regression whose
  rule rolls back (``rollback``, ``staged``, ``approve``: the rule's decision stands) unless
  ``on_regression`` is ``pause``, then ``pause`` (a person resumes or aborts);
* ``stable`` after ``bake_seconds`` at 100 % with no such regression;
* ``wait`` otherwise.

Time is passed in (the bucket's event time, so a replay decides the same); the state is
plain data (:meth:`Ramp.to_dict`), the plan included.

>>> from rollguard.detectors.noninferiority import StepReading
>>> from rollguard.detectors.policy import policy_from_dict
>>> policy = policy_from_dict({"metrics": {"error": {"statistic": "rate", "tolerance": 0.01}},
...     "rollout": {"steps": [10, 100], "min_seconds": 60, "bake_seconds": 60}})
>>> ramp = Ramp.start(policy, now=0.0)
>>> good = {"error": StepReading(100, 5.0, 0.05)}   # 100 samples, 5 nats of 8 (the threshold)
>>> [str(ramp.observe(t, good).action) for t in (10.0, 60.0, 70.0, 110.0, 120.0)]
['wait', 'advance', 'wait', 'wait', 'stable']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.errors import ConfigError, RolloutRefused
from rollguard.detectors.noninferiority import StepReading
from rollguard.detectors.policy import Policy, RuleAction
from rollguard.detectors.ramp_step import MetricTally, lacking, too_thin
from rollguard.detectors.rollout_plan import RolloutPlan, plan_document, rollout_plan

ROLLING = (RuleAction.ROLLBACK, RuleAction.STAGED, RuleAction.APPROVE)


class RampAction(StrEnum):
    """What a guarded rollout asks for after a bucket or a person's command."""

    WAIT = "wait"
    ADVANCE = "advance"  # to ``to_percent``
    HOLD = "hold"  # stay: the step cannot be decided (in time) at this traffic
    AWAIT_APPROVAL = "await_approval"  # the step is passed; ``to_percent`` needs a person
    PAUSE = "pause"  # stay until a person resumes or aborts
    ABORT = "abort"  # the rollout is over; the release is not taken further
    STABLE = "stable"  # baked at 100 %: mark the release stable


# The rollout's standing state, and the action that repeats it.
RUNNING, AWAITING, PAUSED, ABORTED, STABLE = "running", "awaiting", "paused", "aborted", "stable"
_STANDING = {RUNNING: RampAction.WAIT, AWAITING: RampAction.AWAIT_APPROVAL,
             PAUSED: RampAction.PAUSE, ABORTED: RampAction.ABORT, STABLE: RampAction.STABLE}


@dataclass(frozen=True)
class RampVerdict:
    """What to do now. ``percent``/``step`` (1-based): where the rollout stands after it;
    ``to_percent``: the share to go to (advance) or waiting for approval; ``needed_events``:
    the most samples a metric still needs (hold); ``announce``: new since the last verdict
    (tell people), else a repeat."""

    action: RampAction
    percent: float
    step: int
    reason: str
    to_percent: float | None = None
    needed_events: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    announce: bool = True


@dataclass(frozen=True)
class Regression:
    """A sustained regression the monitor found: its ``rule`` (metric or composite) and what
    the rule does about it: ``rollback``, ``staged``, ``approve`` or ``alert``."""

    rule: str
    action: str
    reason: str = ""


@dataclass(frozen=True)
class RampBucket:
    """One closed bucket of the candidate as a guarded rollout sees it: its event time, its
    non-inferiority readings and the sustained regressions decided in it (what a monitor
    with ``measure_ramp`` set hands on: :meth:`ServiceMonitor.drain_ramp`)."""

    ts: float
    readings: dict[str, StepReading]
    regressions: list[Regression]


def regressions_of(decisions: Iterable[Decision]) -> list[Regression]:
    """The sustained regressions among a bucket's decisions (dry runs and fleet holds are
    alerts: they roll nothing back).

    >>> d = Decision(1.0, "chat", "r2", DecisionAction.ROLLBACK, Verdict.SUSTAINED, "r1", [],
    ...              "worse", {"metric": "error"}, requires_approval=True)
    >>> regressions_of([d])
    [Regression(rule='error', action='approve', reason='worse')]
    """
    out = []
    for d in decisions:
        if d.verdict != Verdict.SUSTAINED:
            continue
        if d.action == DecisionAction.STAGE:
            action = "staged"
        elif d.action == DecisionAction.ROLLBACK and not d.dry_run:
            action = "approve" if d.requires_approval else "rollback"
        else:
            action = "alert"
        out.append(Regression(str(d.evidence.get("metric", "")), action, d.reason))
    return out


def gated_metrics(policy: Policy) -> tuple[str, ...]:
    """The metrics whose rule could roll back: each must be shown no worse to pass a step.

    >>> from rollguard.detectors.policy import default_policy
    >>> len(gated_metrics(default_policy()))
    7
    """
    names = {n for n, r in policy.metrics.items() if r.critical and r.action in ROLLING}
    for composite in policy.composites:
        if composite.action in ROLLING:
            names.update(composite.metrics)
    return tuple(n for n in policy.metrics if n in names)


class Ramp:
    """One guarded rollout of one candidate: its plan, the step it stands at and since when,
    the evidence gathered there. See the module's docstring for the rules."""

    def __init__(self, plan: RolloutPlan, gated: Sequence[str], threshold: float,
                 started: float) -> None:
        if not gated:
            raise ConfigError("rollout: the policy has no metric whose rule could roll back, "
                              "so no step could ever be judged")
        self.plan, self.gated, self.threshold = plan, tuple(gated), float(threshold)
        self.step, self.since, self.status = 0, float(started), RUNNING
        self.approved: list[float] = []
        self.tallies: dict[str, MetricTally] = {}
        self.note = f"started at {plan.steps[0]:g}%"  # the reason of the standing state
        self.topic = ""  # what the last verdict said, to announce each news once

    @classmethod
    def start(cls, policy: Policy, now: float, plan: RolloutPlan | None = None) -> Ramp:
        """A rollout at the plan's first step (default: the policy's ``rollout`` plan)."""
        return cls(plan or policy.rollout, gated_metrics(policy), policy.evidence_threshold,
                   now)

    @property
    def percent(self) -> float:
        return self.plan.steps[self.step]

    @property
    def ended(self) -> bool:
        return self.status in (ABORTED, STABLE)

    # -- per closed bucket --------------------------------------------------------------
    def observe(self, now: float, readings: Mapping[str, StepReading],
                regressions: Sequence[Regression] = ()) -> RampVerdict:
        """Fold one closed bucket (event time ``now``) into the step and say what to do."""
        if self.ended:
            return self._standing()
        harm = [r for r in regressions if r.action in ROLLING]
        if harm:
            return self._harmed(now, harm)
        if self.status == PAUSED:
            return self._standing()
        for name in self.gated:
            reading = readings.get(name)
            if reading is not None:
                self.tallies.setdefault(name, MetricTally()).add(reading)
        elapsed = now - self.since
        if self.percent >= 100.0:
            return self._bake(elapsed)
        if self.status == AWAITING:
            return self._standing()
        return self._judge(now, elapsed)

    def observe_bucket(self, bucket: RampBucket) -> RampVerdict:
        """:meth:`observe` of a bucket a monitor handed on."""
        return self.observe(bucket.ts, bucket.readings, bucket.regressions)

    def _judge(self, now: float, elapsed: float) -> RampVerdict:
        plan = self.plan
        lacks = lacking(self.tallies, self.gated, plan.min_samples, self.threshold)
        if not lacks and elapsed >= plan.min_seconds:
            return self._passed(now, elapsed)
        if elapsed >= plan.limit_seconds:
            reasons, needed = too_thin(lacks, self.tallies, elapsed, plan.limit_seconds)
            what = "; ".join(reasons) or f"it is {plan.min_seconds:g} s at least"
            text = (f"step {self.step + 1} ({self.percent:g}%) not decided within "
                    f"{plan.limit_seconds:g} s: {what}")
            if plan.on_limit == "abort":
                return self._end(ABORTED, text, needed)
            return self._say(RampAction.HOLD, text, needed,
                             topic=f"limit {sorted(r.split()[0] for r in reasons)}")
        if elapsed >= plan.min_seconds:
            reasons, needed = too_thin(lacks, self.tallies, elapsed, plan.limit_seconds)
            if reasons:
                text = (f"step {self.step + 1} ({self.percent:g}%) cannot be decided within "
                        f"its limit at this traffic: {'; '.join(reasons)}")
                return self._say(RampAction.HOLD, text, needed,
                                 topic=f"thin {sorted(r.split()[0] for r in reasons)}")
        return self._say(RampAction.WAIT, f"gathering evidence at {self.percent:g}% "
                                          f"({elapsed:.0f} s)", topic="wait")

    def _passed(self, now: float, elapsed: float) -> RampVerdict:
        nxt = self.plan.steps[self.step + 1]
        shown = ", ".join(f"{n} {self.tallies[n].llr:.1f} nats over {self.tallies[n].samples}"
                          for n in self.gated)
        text = (f"step {self.step + 1} ({self.percent:g}%) passed after {elapsed:.0f} s: every "
                f"metric that could roll back is shown no worse than its tolerance ({shown})")
        if self.plan.needs_approval(nxt) and nxt not in self.approved:
            self.status, self.note = AWAITING, f"{text}; {nxt:g}% waits for a person's approval"
            return self._say(RampAction.AWAIT_APPROVAL, self.note, to=nxt, topic="awaiting")
        return self._advance(now, text)

    def _advance(self, now: float, text: str) -> RampVerdict:
        evidence = self._evidence(now)
        self.step, self.since, self.status = self.step + 1, now, RUNNING
        self.tallies = {}
        self.note = text
        return self._say(RampAction.ADVANCE, text, to=self.percent, topic=f"at {self.step}",
                         evidence=evidence)

    def _bake(self, elapsed: float) -> RampVerdict:
        if elapsed >= self.plan.bake_seconds:
            return self._end(STABLE, f"{elapsed:.0f} s at 100% without a regression: the "
                                     f"release is stable and the baseline of the next one")
        return self._say(RampAction.WAIT, f"baking at 100%: {elapsed:.0f} s of "
                                          f"{self.plan.bake_seconds:g}", topic="bake")

    def _harmed(self, now: float, harm: Sequence[Regression]) -> RampVerdict:
        rules = ", ".join(f"{r.rule} ({r.action})" for r in harm)
        text = f"a sustained regression at {self.percent:g}%: {rules}"
        if self.plan.on_regression == "pause":
            self.status, self.note = PAUSED, f"{text}; paused for a person to resume or abort"
            return self._say(RampAction.PAUSE, self.note, topic=f"paused {now}")
        return self._end(ABORTED, f"{text}; the rollout ends, the rule's decision stands")

    # -- a person's commands ------------------------------------------------------------
    def pause(self, now: float, by: str) -> RampVerdict:
        """Stop where it stands until :meth:`resume` or :meth:`abort`."""
        self._refuse_if_ended("pause")
        self.status, self.note = PAUSED, f"paused by {by} at {self.percent:g}%"
        return self._say(RampAction.PAUSE, self.note, topic=f"paused {now}")

    def resume(self, now: float, by: str) -> RampVerdict:
        """Go on after a pause; the step is judged afresh from ``now``."""
        if self.status != PAUSED:
            raise RolloutRefused(f"resume: the rollout is {self.status}, not paused")
        self.status, self.since, self.tallies = RUNNING, now, {}
        self.note = f"resumed by {by}: step {self.step + 1} ({self.percent:g}%) judged afresh"
        return self._say(RampAction.WAIT, self.note, topic=f"resumed {now}")

    def abort(self, now: float, by: str) -> RampVerdict:
        """End the rollout: the release goes no further (the wiring rolls it back)."""
        self._refuse_if_ended("abort")
        return self._end(ABORTED, f"aborted by {by} at {self.percent:g}%")

    def finish(self, now: float, by: str) -> RampVerdict:
        """Take the release to 100 % at once; it is stable after the bake, as any."""
        self._refuse_if_ended("finish")
        if self.percent >= 100.0:
            raise RolloutRefused("finish: the release is at 100% already")
        self.step = len(self.plan.steps) - 2
        return self._advance(now, f"finished by {by}: taken to 100% without the steps left")

    def approve(self, now: float, percent: float, by: str) -> RampVerdict:
        """A person's approval of going to ``percent`` (one of ``approval_before``, ahead of
        the rollout): the advance at once when the rollout waits for it."""
        self._refuse_if_ended("approve")
        if not self.plan.needs_approval(percent) or percent <= self.percent:
            raise RolloutRefused(f"approve: {percent:g}% is not a step ahead that needs "
                                 f"approval (approval_before: "
                                 f"{', '.join(f'{g:g}' for g in self.plan.approval_before)})")
        if percent not in self.approved:
            self.approved.append(percent)
        if self.status == AWAITING and percent == self.plan.steps[self.step + 1]:
            return self._advance(now, f"{self.note}; approved by {by}")
        return self._standing(f"approval of {percent:g}% by {by} recorded", announce=True)

    def at_step(self, step: int, now: float, why: str) -> RampVerdict:
        """The share was moved to ``step`` (0-based) from outside the ramp (a person's
        approval or finish, or an advance that did not apply): it is judged afresh there."""
        self._refuse_if_ended("at_step")
        self.step, self.since, self.tallies = step, now, {}
        if self.status == AWAITING:
            self.status = RUNNING
        self.note = f"{why}: step {step + 1} ({self.percent:g}%) judged afresh"
        return self._say(RampAction.WAIT, self.note, topic=f"at {step} {now}")

    def _refuse_if_ended(self, command: str) -> None:
        if self.ended:
            raise RolloutRefused(f"{command}: the rollout has ended ({self.status})")

    # -- verdicts -------------------------------------------------------------------------
    def _evidence(self, now: float) -> dict[str, Any]:
        return {"step": self.step + 1, "percent": self.percent,
                "seconds_at_step": now - self.since, "threshold": self.threshold,
                "metrics": {n: {"samples": t.samples, "llr": round(t.llr, 3),
                                "unjudged": t.unjudged} for n, t in self.tallies.items()}}

    def _say(self, action: RampAction, reason: str, needed: int | None = None, *,
             to: float | None = None, topic: str,
             evidence: dict[str, Any] | None = None) -> RampVerdict:
        announce, self.topic = topic != self.topic, topic
        return RampVerdict(action, self.percent, self.step + 1, reason, to, needed,
                           evidence if evidence is not None else {}, announce)

    def _end(self, status: str, reason: str, needed: int | None = None) -> RampVerdict:
        self.status, self.note = status, reason
        return self._say(_STANDING[status], reason, needed, topic=status)

    def _standing(self, reason: str | None = None, announce: bool = False) -> RampVerdict:
        to = self.plan.steps[self.step + 1] if self.status == AWAITING else None
        return RampVerdict(_STANDING[self.status], self.percent, self.step + 1,
                           reason or self.note, to, announce=announce)

    # -- state ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready; :func:`detectors.codec` style): :meth:`from_dict` rebuilds a
        ramp that decides the same."""
        return {"plan": plan_document(self.plan), "gated": list(self.gated),
                "threshold": self.threshold, "step": self.step, "since": self.since,
                "status": self.status, "approved": list(self.approved),
                "tallies": {n: t.to_list() for n, t in self.tallies.items()},
                "note": self.note, "topic": self.topic}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ramp:
        ramp = cls(rollout_plan(data["plan"]), data["gated"], data["threshold"], data["since"])
        ramp.step, ramp.status = int(data["step"]), str(data["status"])
        ramp.approved = [float(p) for p in data["approved"]]
        ramp.tallies = {n: MetricTally.from_list(t) for n, t in data["tallies"].items()}
        ramp.note, ramp.topic = str(data["note"]), str(data["topic"])
        return ramp
