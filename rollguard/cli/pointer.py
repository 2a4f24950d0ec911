"""``rollguard status|promote|rollback|pin|unpin|mark-stable|history``."""

from __future__ import annotations

import datetime as dt
import getpass
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from secrets import token_bytes
from typing import Any

import click
import orjson

from rollguard.actions.commands import Op
from rollguard.actions.connect import async_redis_client
from rollguard.actions.operators import OperatorKey
from rollguard.actions.pointer import Outcome, PointerStore
from rollguard.actions.state import PointerState
from rollguard.base.config import secret_from_env
from rollguard.base.errors import ConfigError, UnknownService
from rollguard.cli import dev_mode, run_or_exit, warn_if_dev_secret
from rollguard.detectors.names import drill_mark, is_drill
from rollguard.ops.operator_keys import operator_key

as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
by = click.option(
    "--by", default=lambda: os.environ.get("USER") or getpass.getuser(), show_default="$USER",
    help="Operator name recorded in the history; with an operator key, its owner's.",
)  # fmt: skip
reason = click.option("--reason", default="", help="Why; recorded in the history.")
force = click.option("--force", is_flag=True, help="Flip a pinned service anyway.")
expect = click.option(
    "--expect-epoch", type=int, default=None,
    help="Apply only if the pointer is still at this epoch (else: conflict).",
)  # fmt: skip
cohort = click.option("--cohort", "cohorts", multiple=True, help="Cohort name (repeatable).")


@asynccontextmanager
async def _store(secret: bytes | None = None, operator: OperatorKey | None = None,
                 ) -> AsyncIterator[PointerStore]:
    """A store on REDIS_URL; ``operator``'s key, else ``secret``, signs commands (reads and
    registrations sign nothing, so they need neither)."""
    client = async_redis_client()
    try:
        # Without one, a random key: nothing this store could sign would verify anywhere.
        yield PointerStore(client, secret or token_bytes(32), operator=operator)
    finally:
        await client.aclose()


def _signer(by: str) -> tuple[str, OperatorKey | None, bytes | None]:
    """Who issues a command and what signs it: the operator's own key when one is set up
    (rollguard/ops/operator_keys.py; ``--by`` must then name its owner), else the deployment
    secret, as before operators had keys (the history says so: ``signed_by``)."""
    context = click.get_current_context()
    explicit = context.get_parameter_source("by") != click.core.ParameterSource.DEFAULT
    try:
        key = operator_key(by)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if key is None:
        return by, None, _signing_secret()
    if explicit and by != key.name:
        raise click.ClickException(f"--by {by} but the operator key is {key.name}'s: a key "
                                   "signs for its owner only")
    return key.name, key, None


def _signing_secret() -> bytes:
    """ROLLGUARD_SECRET (or its file); the development secret only with ``--dev``."""
    try:
        secret, is_default = secret_from_env(dev_mode())
    except ConfigError as exc:
        raise click.ClickException(f"{exc}; or, on a laptop, `rollguard --dev ...`") from None
    warn_if_dev_secret(is_default)
    return secret


def _echo_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _versions(components: Mapping[str, str] | None) -> str:
    return " ".join(f"{k}={v}" for k, v in (components or {}).items())


# -- releases -----------------------------------------------------------------------------


async def _known(store: PointerStore, service: str) -> None:
    """Raise UnknownService when ``service`` has neither a release nor a version pointer
    (a misspelt name must not read as "nothing happened")."""
    if await store.releases(service):
        return
    try:
        await store.read(service)
    except UnknownService:
        raise UnknownService(f"unknown service {service!r}: no release registered and no "
                             "version pointer") from None


def _state_dict(state: PointerState) -> dict[str, Any]:
    return {
        "service": state.service, "epoch": state.epoch, "active": state.active,
        "active_components": state.active_components, "stable": state.stable,
        "candidate": state.candidate, "candidate_components": state.candidate_components,
        "percent": state.percent, "cohorts": list(state.cohorts), "pinned": state.pinned,
        "watched_release": state.watched_release, "updated_at": state.updated_at,
        "updated_by": state.updated_by, "command_id": state.command_id,
    }  # fmt: skip


def read_pointer(service: str) -> PointerState:
    """SERVICE's pointer, read with the deployment's Redis settings (one line and exit 1 on
    a failure)."""

    async def work() -> PointerState:
        async with _store() as store:
            return await store.read(service)

    return run_or_exit(work)


@click.command("status")
@click.argument("service")
@as_json
def status(service: str, as_json: bool) -> None:
    """Which releases serve SERVICE now."""
    state = read_pointer(service)
    if as_json:
        _echo_json(_state_dict(state))
        return
    click.echo(f"{service}  epoch {state.epoch}{'  PINNED' if state.pinned else ''}")
    click.echo(f"  active     {state.active}  {_versions(state.active_components)}")
    click.echo(f"  stable     {state.stable}")
    if state.candidate is not None:
        cohorts = f" + cohorts {', '.join(state.cohorts)}" if state.cohorts else ""
        click.echo(f"  candidate  {state.candidate} at {state.percent:g}%{cohorts}  "
                   f"{_versions(state.candidate_components)}")
    click.echo(f"  watched    {state.watched_release or '-'}")
    click.echo(f"  updated    {_when(state.updated_at)} by {state.updated_by}")


@click.command("history")
@click.argument("service")
@click.option("--count", type=click.IntRange(min=1), default=50, show_default=True,
              help="How many recent entries (at least 1).")
@as_json
def history(service: str, count: int, as_json: bool) -> None:
    """What was asked of SERVICE's pointer, by whom, and what happened (a drill service's
    entries are marked as drills)."""

    async def work() -> list[dict[str, Any]]:
        async with _store() as store:
            entries = await store.history(service, count=count)
            if not entries:
                await _known(store, service)
            return entries

    entries = run_or_exit(work)
    if as_json:
        _echo_json([{**e, **drill_mark(service)} for e in entries])
        return
    if not entries:
        click.echo(f"{service} has no history")
    drill = "[drill] " if is_drill(service) else ""  # a rehearsal: rollguard drill's service
    for e in entries:
        epochs = f"{e.get('epoch_before')}->{e.get('epoch_after')}"
        target = f" {e['release']}" if e.get("release") else ""
        code = f" [{e['code']}]" if e.get("code") else ""
        who = e["issued_by"]
        if e.get("signed_by") not in (None, who) and not who.startswith("rule:"):
            who = f"{who} (signed by {e['signed_by']})"
        click.echo(f"{drill}{_when(e['at'])}  {e['outcome']:<15} {e['op']}{target} by {who}"
                   f"  epoch {epochs}{code}  {e.get('message', '')}")


# -- commands that move the pointer -------------------------------------------------------


def _issue(service: str, op: Op, by: str, as_json: bool,
           needs: Callable[[PointerState], dict[str, Any]] | None = None,
           **fields: Any) -> None:
    """Sign ``op`` for ``service`` and execute it; ``needs(state)`` adds fields read from
    the pointer first (a rollout's approval names the step and the epoch it saw)."""
    issued_by, key, secret = _signer(by)
    fields = {k: v for k, v in fields.items() if v not in (None, (), "")}

    async def work() -> Outcome:
        async with _store(secret, key) as store:
            extra = needs(await store.read(service)) if needs is not None else {}
            outcome = await store.issue(service, op, issued_by, **fields, **extra)
            if as_json:
                _echo_json(_outcome_dict(outcome))
            return outcome.raise_for_status()

    outcome = run_or_exit(work)
    if not as_json:
        done = "done" if outcome.status == "applied" else "already applied"
        click.echo(f"{done}: {outcome.message} (epoch {outcome.epoch_before} -> "
                   f"{outcome.epoch_after})")


def _outcome_dict(outcome: Outcome) -> dict[str, Any]:
    return {
        "status": outcome.status, "code": outcome.code, "message": outcome.message,
        "service": outcome.service, "command_id": outcome.command_id,
        "epoch_before": outcome.epoch_before, "epoch_after": outcome.epoch_after,
        "history_id": outcome.history_id,
    }  # fmt: skip


@click.command("promote")
@click.argument("service")
@click.argument("release")
@click.option("--percent", type=click.FloatRange(0, 100), default=None,
              help="Stage RELEASE as candidate for this share of traffic.")
@cohort
@reason
@force
@expect
@by
@as_json
def promote(service: str, release: str, percent: float | None, cohorts: tuple[str, ...],
            reason: str, force: bool, expect_epoch: int | None, by: str, as_json: bool) -> None:
    """Make RELEASE active (or the candidate for --percent / --cohort)."""
    _issue(service, "promote", by, as_json, release=release, percent=percent, cohorts=cohorts,
           reason=reason, force=force or None, expected_epoch=expect_epoch)


@click.command("rollback")
@click.argument("service")
@click.option("--to", "target", default=None, help="Release to roll back to (default: stable).")
@click.option("--component", "components", multiple=True,
              help="Roll back only this component (repeatable): a derived release is made.")
@click.option("--percent", type=click.FloatRange(0, 100), default=None,
              help="Cut the candidate's share to this percent instead of removing it.")
@click.option("--cohort", "cohorts", multiple=True, help="Cohort to drop (repeatable).")
@reason
@force
@expect
@by
@as_json
def rollback(service: str, target: str | None, components: tuple[str, ...],
             percent: float | None, cohorts: tuple[str, ...], reason: str, force: bool,
             expect_epoch: int | None, by: str, as_json: bool) -> None:
    """Roll SERVICE back: fully, partly (--component), or in stages (--percent, --cohort)."""
    _issue(service, "rollback", by, as_json, release=target, components=components,
           percent=percent, cohorts=cohorts, reason=reason, force=force or None,
           expected_epoch=expect_epoch)


@click.command("pin")
@click.argument("service")
@reason
@by
@as_json
def pin(service: str, reason: str, by: str, as_json: bool) -> None:
    """Pin SERVICE: rules can no longer flip it; people need --force."""
    _issue(service, "pin", by, as_json, reason=reason)


@click.command("unpin")
@click.argument("service")
@reason
@by
@as_json
def unpin(service: str, reason: str, by: str, as_json: bool) -> None:
    """Unpin SERVICE."""
    _issue(service, "unpin", by, as_json, reason=reason)


@click.command("mark-stable")
@click.argument("service")
@click.argument("release", required=False)
@reason
@force
@by
@as_json
def mark_stable(service: str, release: str | None, reason: str, force: bool, by: str,
                as_json: bool) -> None:
    """Record the fully active release as SERVICE's known-good rollback target."""
    _issue(service, "mark_stable", by, as_json, release=release, reason=reason,
           force=force or None)


COMMANDS = (status, history, promote, rollback, pin, unpin, mark_stable)
