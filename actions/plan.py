"""Decide what a command does to a pointer: a pure function of the state, command and releases.

The store (``actions/pointer.py``) reads the state, calls :func:`plan`, and hands the result to
the Lua script, which applies it only if the epoch it was planned against still holds.
"""

from __future__ import annotations

from collections.abc import Mapping

from rollguard.actions.commands import Command
from rollguard.actions.pin import PinVerdict, pin_verdict
from rollguard.actions.planned import NO_CANDIDATE, Change, NoChange, Plan, Refusal, advanced
from rollguard.actions.releases import Release, derive
from rollguard.actions.rollout import MOVES, ROLLOUT_OPS, plan_rollout, rollout_of
from rollguard.actions.state import PointerState, to_resolution
from rollguard.base.errors import UnknownComponent

FLIPS = ("promote", "rollback", "mark_stable")


def plan(
    state: PointerState | None, command: Command, releases: Mapping[str, Release], now: float
) -> Plan:
    """What ``command`` does to ``state``.

    >>> from rollguard.actions.commands import new_command
    >>> v1 = Release("v1", {"model": "m1"})
    >>> go = new_command("bot", "promote", "ann", 0.0, release="v1")
    >>> first = plan(None, go, {"v1": v1}, now=1.0)
    >>> first.state.active, first.state.stable, first.state.epoch
    ('v1', 'v1', 1)
    >>> plan(first.state, go, {"v1": v1}, now=2.0)
    NoChange(message='v1 is already the active release of bot')
    """
    planned = _ended_rollout(_plan(state, command, releases, now))
    if isinstance(planned, Change):
        before = state.watched_release if state is not None else None
        if planned.state.watched_release != before:
            # A new episode: the monitor judges this promotion afresh, under its own
            # idempotency key, even of a release rolled back before.
            new = planned.state.with_changes(watched_since=planned.state.epoch)
            return Change(new, planned.message, planned.derived)
    return planned


def _ended_rollout(planned: Plan) -> Plan:
    # A rollout ends with its release's episode: rolled back, replaced or marked stable.
    if isinstance(planned, Change):
        rollout = rollout_of(planned.state)
        if rollout is not None and planned.state.watched_release != rollout.release:
            return Change(planned.state.with_changes(rollout=None),
                          f"{planned.message}; the rollout of {rollout.release} ends",
                          planned.derived)
    return planned


def _plan(
    state: PointerState | None, command: Command, releases: Mapping[str, Release], now: float
) -> Plan:
    if state is None:
        return _first(command, releases, now)
    if command.op in FLIPS or command.op in MOVES:
        refused = _pin_refusal(state, command)
        if refused is not None:
            return refused
    if command.op in ROLLOUT_OPS:
        return plan_rollout(state, command, releases, now)
    if command.op == "pin":
        if state.pinned:
            return NoChange(f"{state.service} is already pinned")
        return Change(_next(state, command, now, pinned=True), f"pinned {state.service}")
    if command.op == "unpin":
        if not state.pinned:
            return NoChange(f"{state.service} is not pinned")
        return Change(_next(state, command, now, pinned=False), f"unpinned {state.service}")
    if command.op == "mark_stable":
        return _mark_stable(state, command, now)
    if command.op == "promote":
        return _promote(state, command, releases, now)
    return _rollback(state, command, releases, now)


def _pin_refusal(state: PointerState, command: Command) -> Refusal | None:
    # only people override a pin: a rule's rollback once its approvers said so (the actuator
    # re-signs it with force and their names)
    pin = pin_verdict(state.pinned, by_rule=command.automatic, force=command.force,
                      approved=bool(command.evidence.get("approvers")))
    if pin is PinVerdict.FREE:
        return None
    if pin is PinVerdict.NEEDS_FORCE:
        return Refusal("pinned", f"{state.service} is pinned: a manual flip needs --force")
    return Refusal("pinned", f"{state.service} is pinned: automatic flips are refused")


def _next(state: PointerState, command: Command, now: float, **changes: object) -> PointerState:
    return advanced(state, command, now, **changes)


def _first(command: Command, releases: Mapping[str, Release], now: float) -> Plan:
    if command.op != "promote":
        return Refusal(
            "unknown_service", f"{command.service} has no pointer yet: promote a release first"
        )
    if not releases:
        return Refusal("unknown_service", f"{command.service} has no registered releases")
    release = releases.get(command.release or "")
    if release is None:
        return _unknown_release(command.service, command.release, releases)
    if command.percent is not None or command.cohorts:
        return Refusal("invalid", "the first promote of a service must be full: nothing to stage")
    state = PointerState(
        service=command.service,
        active=release.name,
        stable=release.name,
        epoch=1,
        active_components=dict(release.components),
        updated_at=now,
        updated_by=command.issued_by,
        command_id=command.command_id,
    )
    return Change(state, f"{release.name} is now active and stable for {command.service}")


def _unknown_release(service: str, name: str | None, releases: Mapping[str, Release]) -> Refusal:
    known = ", ".join(sorted(releases)[:10]) or "none"
    return Refusal("unknown_release", f"{service} has no release {name!r} (known: {known})")


def _mark_stable(state: PointerState, command: Command, now: float) -> Plan:
    name = command.release or state.active
    if name != state.active or state.candidate is not None:
        return Refusal(
            "invalid",
            f"only the fully active release can be marked stable (active: {state.active})",
        )
    if state.stable == name:
        return NoChange(f"{name} already is the stable release of {state.service}")
    return Change(_next(state, command, now, stable=name), f"{name} is now stable")


def _promote(
    state: PointerState, command: Command, releases: Mapping[str, Release], now: float
) -> Plan:
    release = releases.get(command.release or "")
    if release is None:
        return _unknown_release(state.service, command.release, releases)
    if command.automatic and release.name != state.watched_release:
        # A rule only gives a staged candidate its share back (actions/staged.py).
        return Refusal("invalid", f"a rule promotes only the release under watch "
                       f"({state.watched_release}), never {release.name}")
    if command.percent is None and not command.cohorts:
        if state.active == release.name and state.candidate is None:
            return NoChange(f"{release.name} is already the active release of {state.service}")
        new = _next(
            state,
            command,
            now,
            active=release.name,
            active_components=dict(release.components),
            **NO_CANDIDATE,
        )
        return Change(new, f"{release.name} is now active for {state.service}")
    if release.name == state.active:
        return Refusal("invalid", f"{release.name} is already active: stage another release")
    percent = to_resolution(command.percent or 0.0)
    if (state.candidate, state.percent, state.cohorts) == (release.name, percent, command.cohorts):
        return NoChange(f"{release.name} already serves that share of {state.service}")
    new = _next(
        state,
        command,
        now,
        candidate=release.name,
        candidate_components=dict(release.components),
        percent=percent,
        cohorts=command.cohorts,
    )
    return Change(new, f"{release.name} now serves {_share(new)} of {state.service}")


def _share(state: PointerState) -> str:
    cohorts = f" and cohorts {', '.join(state.cohorts)}" if state.cohorts else ""
    return f"{state.percent:g}%{cohorts}"


def _rollback(
    state: PointerState, command: Command, releases: Mapping[str, Release], now: float
) -> Plan:
    target = releases.get(command.release or state.stable)
    if target is None:
        return _unknown_release(state.service, command.release or state.stable, releases)
    if command.components:
        return _partial(state, command, releases, target, now)
    if command.percent is not None or command.cohorts:
        return _staged(state, command, target, now)
    stable = target.name if command.release else state.stable
    if state.active == target.name and state.candidate is None and state.stable == stable:
        return NoChange(f"{state.service} already serves {target.name}")
    new = _next(
        state,
        command,
        now,
        active=target.name,
        active_components=dict(target.components),
        stable=stable,
        **NO_CANDIDATE,
    )
    return Change(new, f"rolled {state.service} back to {target.name}")


def _partial(
    state: PointerState,
    command: Command,
    releases: Mapping[str, Release],
    target: Release,
    now: float,
) -> Plan:
    watched_name = state.watched_release
    serving = releases.get(watched_name or state.active)
    unknown = [c for c in command.components
               if c not in target.components or (serving and c not in serving.components)]
    if unknown:
        return Refusal(
            "unknown_component",
            f"{state.service}: no component {unknown[0]!r} in {target.name}"
            f" ({', '.join(target.components)})",
        )
    if watched_name is None or watched_name == target.name:
        return NoChange(f"{state.service} serves {state.active} only: nothing to roll back")
    watched = releases.get(watched_name)
    if watched is None:
        return _unknown_release(state.service, watched_name, releases)
    try:
        derived = derive(watched, target, command.components, releases)
    except UnknownComponent as exc:
        return Refusal("unknown_component", str(exc))
    if derived.components == watched.components:
        chosen = ", ".join(command.components)
        return NoChange(f"{watched.name} already uses {target.name}'s {chosen}")
    if state.candidate is not None:
        new = _next(
            state, command, now, candidate=derived.name, candidate_components=derived.components
        )
    else:
        new = _next(state, command, now, active=derived.name, active_components=derived.components)
    message = f"{derived.name} replaces {watched.name} for {state.service}"
    if command.percent is not None:
        staged = _staged(new, command, target, now)
        if isinstance(staged, Refusal):
            return staged
        if isinstance(staged, Change):
            new = staged.state.with_changes(epoch=new.epoch)
            message = f"{message}; {staged.message}"
    return Change(new, message, derived)


def _staged(state: PointerState, command: Command, target: Release, now: float) -> Plan:
    if state.candidate is None:
        if state.active == target.name:
            return NoChange(f"{state.service} serves {target.name} only: nothing to cut")
        # A fully promoted release becomes the candidate again, with the share asked for.
        percent = to_resolution(command.percent) if command.percent is not None else 0.0
        new = _next(
            state,
            command,
            now,
            active=target.name,
            active_components=dict(target.components),
            candidate=state.active if percent > 0 else None,
            candidate_components=state.active_components if percent > 0 else None,
            percent=percent if percent > 0 else 0.0,
            cohorts=(),
        )
        return Change(new, f"{state.active} cut to {percent:g}% of {state.service}")
    percent = state.percent if command.percent is None else to_resolution(command.percent)
    if percent > state.percent:
        return Refusal(
            "invalid",
            f"a rollback only cuts the candidate's share: {percent:g}% > {state.percent:g}%",
        )
    cohorts = tuple(c for c in state.cohorts if c not in command.cohorts)
    if (percent, cohorts) == (state.percent, state.cohorts):
        return NoChange(f"{state.candidate} already serves {_share(state)} of {state.service}")
    if percent == 0 and not cohorts:
        new = _next(state, command, now, **NO_CANDIDATE)
        return Change(new, f"{state.candidate} no longer serves {state.service}")
    new = _next(state, command, now, percent=percent, cohorts=cohorts)
    return Change(new, f"{state.candidate} now serves {_share(new)} of {state.service}")
