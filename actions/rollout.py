"""A guarded rollout on the pointer: the plan a person signed, where it stands, and what each
rollout command does to the pointer (pure; :mod:`detectors.rollout` decides when to move).

The plan travels in the pointer's value (its ``rollout`` field, :class:`Rollout`), so the
share and the step it stands at change together under one epoch, and every reader of the
pointer sees both. Only a person starts, pauses, resumes, aborts or finishes a rollout;
the worker only moves the share to the plan's next step (``ramp``), a compare-and-set on
the epoch it decided at, which ``actions/lua/apply.lua`` checks against the stored plan
once more (:func:`ramp_guard`).

>>> from rollguard.actions.commands import new_command
>>> state = PointerState("bot", "v1", "v1", 4, {"model": "m1"})
>>> go = new_command("bot", "rollout_start", "ann", 10.0, release="v2",
...                  evidence={"plan": {"steps": [10, 100]}})
>>> started = plan_rollout(state, go, {"v2": Release("v2", {"model": "m2"})}, now=10.0)
>>> started.state.candidate, started.state.percent, rollout_of(started.state).status
('v2', 10.0, 'running')
>>> up = new_command("bot", "ramp", "rule:rollout", 20.0, release="v2", percent=100.0,
...                  expected_epoch=5, evidence={"rollout": go.command_id, "from": 10.0})
>>> done = plan_rollout(started.state, up, {}, now=20.0).state
>>> done.active, done.candidate, rollout_of(done).percent
('v2', None, 100.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from rollguard.actions.commands import Command
from rollguard.actions.planned import NO_CANDIDATE, Change, NoChange, Plan, Refusal, advanced
from rollguard.actions.releases import Release
from rollguard.actions.state import PointerState
from rollguard.detectors.errors import ConfigError
from rollguard.detectors.rollout_plan import RolloutPlan, plan_document, rollout_plan

RUNNING, PAUSED = "running", "paused"
PERSON_OPS = ("rollout_start", "rollout_pause", "rollout_resume", "rollout_abort",
              "rollout_finish")
ROLLOUT_OPS = (*PERSON_OPS, "ramp")
# The rollout commands that move the share: the pin rule applies to them (actions/pin.py).
MOVES = ("rollout_start", "rollout_abort", "rollout_finish", "ramp")
# Who vouched for a start signed with the deployment secret (as actions/script.py says).
DEPLOYMENT_SECRET = "deployment-secret"


@dataclass(frozen=True)
class Rollout:
    """A rollout under way: ``id`` is the start command's (its signed copy is in the
    history), ``plan`` the plan document the person signed, ``step`` the index of the share
    the release serves, since ``since`` (wall clock); ``last``: the last person's command
    (``op``, ``by``, ``command_id``, ``at``), which the worker carries out on its ramp."""

    id: str
    release: str
    plan: dict[str, Any]
    step: int
    status: str
    by: str
    signed_by: str
    started_at: float
    since: float
    last: dict[str, Any]

    @property
    def steps(self) -> tuple[float, ...]:
        return tuple(float(s) for s in self.plan["steps"])

    @property
    def percent(self) -> float:
        return self.steps[self.step]

    @property
    def next_percent(self) -> float | None:
        steps = self.steps
        return steps[self.step + 1] if self.step + 1 < len(steps) else None

    def rollout_plan(self) -> RolloutPlan:
        return rollout_plan(self.plan)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rollout_of(state: PointerState | None) -> Rollout | None:
    """The rollout under way on ``state`` (None: none)."""
    raw = state.rollout if state is not None else None
    if not raw:
        return None
    return Rollout(**{k: raw[k] for k in Rollout.__dataclass_fields__})


def share_of_release(state: PointerState, release: str) -> float:
    """The percent of the traffic ``release`` serves on ``state``."""
    if state.candidate == release:
        return state.percent
    if state.candidate is None and state.active == release:
        return 100.0
    return 0.0


def ramp_guard(command: Command) -> dict[str, Any] | None:
    """What apply.lua checks a ``ramp`` against the stored plan with (None: not a ramp)."""
    if command.op != "ramp":
        return None
    return {"id": str(command.evidence.get("rollout", "")),
            "from": command.evidence.get("from"), "to": command.percent}


def plan_rollout(state: PointerState, command: Command, releases: Mapping[str, Release],
                 now: float) -> Plan:
    """What a rollout command (:data:`ROLLOUT_OPS`) does to ``state``."""
    if command.op == "rollout_start":
        return _start(state, command, releases, now)
    current = rollout_of(state)
    if current is None:
        return Refusal("no_rollout", f"{state.service} has no rollout under way")
    if command.op == "ramp":
        return _ramp(state, current, command, now)
    if command.automatic:
        return Refusal("invalid", "only a person pauses, resumes, aborts or finishes a rollout")
    last = {"op": command.op.removeprefix("rollout_"), "by": command.issued_by,
            "command_id": command.command_id, "at": now}
    if command.op == "rollout_pause":
        if current.status == PAUSED:
            return NoChange(f"the rollout of {current.release} is paused already")
        new = replace(current, status=PAUSED, last=last)
        return Change(advanced(state, command, now, rollout=new.to_dict()),
                      f"rollout of {current.release} paused at {current.percent:g}%")
    if command.op == "rollout_resume":
        new = replace(current, status=RUNNING, since=now, last=last)
        return Change(advanced(state, command, now, rollout=new.to_dict()),
                      f"rollout of {current.release} resumed at {current.percent:g}%: the "
                      f"step is judged afresh")
    if command.op == "rollout_abort":
        return _abort(state, current, command, releases, now)
    return _finish(state, current, command, now, last)


def _start(state: PointerState, command: Command, releases: Mapping[str, Release],
           now: float) -> Plan:
    if command.automatic:
        return Refusal("invalid", "a rollout's plan is signed by a person, never by a rule")
    under_way = rollout_of(state)
    if under_way is not None:
        return Refusal("invalid", f"the rollout of {under_way.release} is under way: finish "
                                  f"or abort it first")
    if state.pinned:
        return Refusal("pinned", f"{state.service} is pinned: unpin it to start a rollout")
    if state.watched_release is not None:
        return Refusal("invalid", f"{state.watched_release} is under watch already: mark it "
                                  f"stable or roll it back first")
    release = releases.get(command.release or "")
    if release is None:
        known = ", ".join(sorted(releases)[:10]) or "none"
        return Refusal("unknown_release",
                       f"{state.service} has no release {command.release!r} (known: {known})")
    if release.name == state.active:
        return Refusal("invalid", f"{release.name} is already active: roll out another release")
    try:
        plan = rollout_plan(command.evidence.get("plan"))
    except ConfigError as exc:
        return Refusal("invalid", f"the rollout plan: {exc}")
    first = plan.steps[0]
    record = Rollout(command.command_id, release.name, plan_document(plan), 0, RUNNING,
                     command.issued_by, command.signer or DEPLOYMENT_SECRET, now, now,
                     {"op": "start", "by": command.issued_by,
                      "command_id": command.command_id, "at": now})
    if first >= 100.0:
        share: dict[str, Any] = {"active": release.name,
                                 "active_components": dict(release.components), **NO_CANDIDATE}
    else:
        share = {"candidate": release.name, "candidate_components": dict(release.components),
                 "percent": first, "cohorts": ()}
    new = advanced(state, command, now, rollout=record.to_dict(), **share)
    steps = ", ".join(f"{s:g}" for s in plan.steps)
    return Change(new, f"rollout of {release.name} started at {first:g}% by "
                       f"{command.issued_by} (steps {steps})")


def _ramp(state: PointerState, current: Rollout, command: Command, now: float) -> Plan:
    guard = ramp_guard(command) or {}
    problem = ramp_refusal(state, current, guard)
    if problem is not None:
        return Refusal("not_in_plan", f"ramp of {state.service} refused: {problem}")
    if command.expected_epoch is None:
        return Refusal("invalid", "a ramp is a compare-and-set: it names the epoch it was "
                                  "decided at")
    to = float(guard["to"])
    if command.automatic and to in current.rollout_plan().approval_before:
        return Refusal("needs_approval", f"going to {to:g}% waits for a person's approval")
    moved = replace(current, step=current.step + 1, since=now)
    if to >= 100.0:
        components = dict(state.candidate_components or state.active_components)
        new = advanced(state, command, now, active=current.release,
                       active_components=components, rollout=moved.to_dict(), **NO_CANDIDATE)
    else:
        new = advanced(state, command, now, percent=to, rollout=moved.to_dict())
    return Change(new, f"{current.release} now serves {to:g}% of {state.service} (step "
                       f"{moved.step + 1} of {len(current.steps)})")


def ramp_refusal(state: PointerState, current: Rollout, guard: Mapping[str, Any]) -> str | None:
    """Why a ramp asking ``guard`` (:func:`ramp_guard`) is outside the stored plan, or None;
    apply.lua checks the same against the pointer it holds."""
    if guard.get("id") != current.id:
        return f"it names rollout {guard.get('id')!r}, the one under way is {current.id}"
    if current.status != RUNNING:
        return f"the rollout is {current.status}"
    if state.pinned:
        return "the service is pinned: a rollout's move never overrides a pin"
    share = share_of_release(state, current.release)
    if guard.get("from") != current.percent or share != current.percent:
        return (f"it moves from {guard.get('from')}%, the release serves {share:g}% at step "
                f"{current.step + 1} ({current.percent:g}%)")
    if current.next_percent is None or guard.get("to") != current.next_percent:
        nxt = "none" if current.next_percent is None else f"{current.next_percent:g}%"
        return f"it moves to {guard.get('to')}%, the plan's next step is {nxt}"
    return None


def _abort(state: PointerState, current: Rollout, command: Command,
           releases: Mapping[str, Release], now: float) -> Plan:
    back: dict[str, Any] = dict(NO_CANDIDATE)
    if state.active == current.release:
        stable = releases.get(state.stable)
        if stable is None:
            return Refusal("unknown_release", f"{state.service} has no release {state.stable!r}")
        back.update(active=stable.name, active_components=dict(stable.components))
    new = advanced(state, command, now, rollout=None, **back)
    return Change(new, f"rollout of {current.release} aborted at {current.percent:g}% by "
                       f"{command.issued_by}: {state.service} is back on {state.stable}")


def _finish(state: PointerState, current: Rollout, command: Command, now: float,
            last: dict[str, Any]) -> Plan:
    if share_of_release(state, current.release) >= 100.0:
        return NoChange(f"{current.release} serves 100% of {state.service} already")
    done = replace(current, step=len(current.steps) - 1, status=RUNNING, since=now, last=last)
    components = dict(state.candidate_components or state.active_components)
    new = advanced(state, command, now, active=current.release, active_components=components,
                   rollout=done.to_dict(), **NO_CANDIDATE)
    return Change(new, f"rollout of {current.release} finished by {command.issued_by}: it "
                       f"serves 100% of {state.service}, stable after the bake")


def waits_for(state: PointerState, current: Rollout) -> str:
    """What the rollout on ``state`` waits for, in words."""
    plan = current.rollout_plan()
    if state.pinned:
        return "the service is pinned: nothing moves until it is unpinned"
    if current.status == PAUSED:
        return (f"a person to resume or abort it (paused by {current.last.get('by')}: "
                "rollguard rollout resume|abort)")
    nxt = current.next_percent
    if nxt is None:
        return (f"the bake: {plan.bake_seconds:g} s at 100% without a regression, then the "
                f"release is marked stable")
    then = (f"a person's approval of {nxt:g}% (rollguard rollout approve)"
            if nxt in plan.approval_before else f"the move to {nxt:g}%")
    return (f"evidence that every metric that could roll back is no worse: at least "
            f"{plan.min_seconds:g} s and {plan.min_samples} samples each at this step, "
            f"within {plan.limit_seconds:g} s ({plan.on_limit} after); then {then}")


def rollout_status(state: PointerState | None, now: float) -> dict[str, Any] | None:
    """What ``rollguard rollout status`` and the status page say of the rollout under way on
    ``state`` (None: none)."""
    current = rollout_of(state)
    if state is None or current is None:
        return None
    return {"service": state.service, "release": current.release, "status": current.status,
            "pinned": state.pinned, "step": current.step + 1, "steps": list(current.steps),
            "percent": share_of_release(state, current.release),
            "since": current.since, "seconds_at_step": max(0.0, now - current.since),
            "started_by": current.by, "signed_by": current.signed_by,
            "started_at": current.started_at, "last": current.last, "id": current.id,
            "epoch": state.epoch, "waits_for": waits_for(state, current)}
