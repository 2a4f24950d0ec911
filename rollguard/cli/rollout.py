"""``rollguard rollout start|pause|resume|abort|finish|approve|status``: a guarded rollout.

The plan is signed by the person who starts it (their operator key, else the deployment
secret) and stored with the pointer (actions/rollout.py); the worker moves the share within
it. Every command here is a signed pointer command, recorded in the history.
"""

from __future__ import annotations

import time
from typing import Any

import click

from rollguard.actions.commands import Op
from rollguard.actions.rollout import Rollout, rollout_of, rollout_status
from rollguard.actions.state import PointerState
from rollguard.base.errors import ConfigError, RollguardError
from rollguard.cli.pointer import (
    _echo_json,
    _issue,
    _when,
    as_json,
    by,
    force,
    read_pointer,
    reason,
)
from rollguard.detectors.policy import Policy, default_policy, load_policy
from rollguard.detectors.rollout_plan import plan_document


class NoRollout(RollguardError):
    """The service has no rollout under way."""


@click.group("rollout")
def rollout() -> None:
    """Take a release through steps of the traffic on evidence that it is no worse."""


def _policy(path: str | None) -> Policy:
    try:
        return load_policy(path) if path else default_policy()
    except (ConfigError, OSError) as exc:
        raise click.ClickException(f"--policy {path}: {exc}") from None


def _plan(policy_path: str | None, steps: str | None) -> dict[str, Any]:
    """The plan to sign: the policy's ``rollout:`` section, its steps replaced by ``steps``."""
    document = plan_document(_policy(policy_path).rollout)
    if steps:
        try:
            document["steps"] = [float(s) for s in steps.split(",")]
        except ValueError:
            raise click.ClickException(f"--steps {steps}: a comma-separated list of "
                                       "percentages, e.g. 1,5,25,50,100") from None
    return document


@rollout.command("start")
@click.argument("service")
@click.argument("release")
@click.option("--steps", default=None, help="Percentages, rising to 100 (default: the "
              "policy's rollout steps, 1,5,25,50,100).")
@click.option("--policy", "policy_path", envvar="ROLLGUARD_POLICY", default=None,
              help="Policy file whose rollout: section is the plan (default: "
                   "ROLLGUARD_POLICY, else the shipped policy).")
@reason
@by
@as_json
def start(service: str, release: str, steps: str | None, policy_path: str | None,
          reason: str, by: str, as_json: bool) -> None:
    """Start rolling RELEASE out to SERVICE at the plan's first step, signed by you."""
    plan = _plan(policy_path, steps)
    _issue(service, "rollout_start", by, as_json, release=release,
           percent=plan["steps"][0], reason=reason, evidence={"plan": plan})


def _person_command(op: Op, name: str, doc: str, with_force: bool = False) -> click.Command:
    @click.argument("service")
    @reason
    @by
    @as_json
    def command(service: str, reason: str, by: str, as_json: bool,
                force: bool = False) -> None:
        _issue(service, op, by, as_json, reason=reason, force=force or None)

    command.__doc__ = doc
    if with_force:
        command = force(command)
    return rollout.command(name)(command)


_person_command("rollout_pause", "pause", "Hold SERVICE's rollout where it stands.")
_person_command("rollout_resume", "resume",
                "Go on with SERVICE's rollout; its step is judged afresh.")
_person_command("rollout_abort", "abort", "End SERVICE's rollout: back to the stable release.",
                with_force=True)
_person_command("rollout_finish", "finish", "Take SERVICE's release to 100% at once; it "
                "is marked stable after the bake.", with_force=True)


def _approval(state: PointerState) -> dict[str, Any]:
    current = _current(state)
    if current.next_percent is None:
        raise NoRollout(f"{state.service}: the rollout is at its last step")
    return {"release": current.release, "percent": current.next_percent,
            "expected_epoch": state.epoch,
            "evidence": {"rollout": current.id, "from": current.percent}}


@rollout.command("approve")
@click.argument("service")
@reason
@by
@as_json
def approve(service: str, reason: str, by: str, as_json: bool) -> None:
    """Move SERVICE's rollout to its next step now, by your signed decision (never while
    SERVICE is pinned)."""
    _issue(service, "ramp", by, as_json, needs=_approval, reason=reason)


def _current(state: PointerState) -> Rollout:
    current = rollout_of(state)
    if current is None:
        raise NoRollout(f"{state.service} has no rollout under way (serving {state.active}"
                        f"{f', candidate {state.candidate}' if state.candidate else ''})")
    return current


@rollout.command("status")
@click.argument("service")
@as_json
def status(service: str, as_json: bool) -> None:
    """Which release SERVICE is rolling out, at which step, since when, waiting for what."""
    state = read_pointer(service)
    _current_or_exit(state)
    data = rollout_status(state, time.time())
    assert data is not None
    if as_json:
        _echo_json(data)
        return
    steps = ", ".join(f"{s:g}" for s in data["steps"])
    click.echo(f"{service}  rolling out {data['release']}  {data['status'].upper()}"
               f"{'  PINNED' if state.pinned else ''}")
    click.echo(f"  step       {data['step']} of {len(data['steps'])} ({data['percent']:g}%; "
               f"steps {steps})")
    click.echo(f"  since      {_when(data['since'])} ({data['seconds_at_step']:.0f} s)")
    click.echo(f"  started    {_when(data['started_at'])} by {data['started_by']} (signed by "
               f"{data['signed_by']})")
    click.echo(f"  waits for  {data['waits_for']}")


def _current_or_exit(state: PointerState) -> Rollout:
    try:
        return _current(state)
    except NoRollout as exc:
        raise click.ClickException(str(exc)) from None


COMMANDS = (rollout,)
