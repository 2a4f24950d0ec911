"""What a decision means for the version pointer: a signed command, or why there is none.

Pure: the decision, the service's pointer (None: none registered), the time and the secret
in; a :class:`~rollguard.actions.commands.Command` or a :class:`Suppression`
out. The release roles a
monitor judges by come from the pointer too (:func:`roles_of`), so a flip made by hand is
respected and a pinned service is left alone.

>>> from rollguard.detectors.decision import Decision
>>> d = Decision(ts=1.0, service="chat", release="v2", action="rollback",
...              verdict="sustained", to="v1", components=[], reason="worse")
>>> respond(d, None, now=10.0, secret=b"s")
Suppression(why='no version pointer is registered for this service')
>>> idempotency_key(d, PointerState("chat", "v1", "v1", 9, {}, candidate="v2", watched_since=7))
'chat:v2@7:rollback:*'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollguard.actions.commands import Command, new_command, sign
from rollguard.actions.pin import PinVerdict, pin_verdict
from rollguard.actions.staged import NotStaged, share_of, staged_command
from rollguard.actions.state import PointerState
from rollguard.detectors.decision import Decision, DecisionAction

# How long a rollback command may wait in the commands topic before the actuator receives it
# (it is refused as stale after); an approved command is signed afresh for as long. A command
# received in time is kept while Redis is away, however long (actions/actuator.py).
# The worker's ROLLGUARD_COMMAND_TTL_S overrides it.
COMMAND_TTL_S = 300.0
NO_POINTER = "no version pointer is registered for this service"
ACTING = (DecisionAction.ROLLBACK, DecisionAction.STAGE, DecisionAction.RESTORE)


@dataclass(frozen=True)
class Suppression:
    """A rollback decision that must not act on the pointer, and why."""

    why: str


def roles_of(pointer: PointerState | None,
             ) -> tuple[str | None, str | None, int | None, float | None] | None:
    """The ``(stable, candidate, episode, share)`` a monitor judges by; None: infer them.
    The episode is the epoch at which the pointer began to watch the candidate; the share
    is the candidate's percent of the traffic (100 when it is the active release).

    >>> roles_of(PointerState("chat", "v2", "v1", 4, {}, watched_since=3))
    ('v1', 'v2', 3, 100.0)
    """
    if pointer is None:
        return None
    return pointer.stable, pointer.watched_release, pointer.watched_since, share_of(pointer)


def why_not_act(decision: Decision, pointer: PointerState | None) -> str | None:
    """Why a rollback decision must not flip the pointer, or None when it may."""
    if decision.dry_run:
        return "dry-run: the policy evaluates this rule without acting on it"
    if pointer is None:
        return NO_POINTER
    # one that waits for people is kept: approvers may override the pin (the policy's
    # approvals.pinned_full_rollback says how many)
    pin = pin_verdict(pointer.pinned, by_rule=True, awaits_approval=decision.requires_approval)
    if pin is PinVerdict.REFUSED_AUTOMATIC:
        return "the service is pinned; automatic rollbacks are refused"
    if decision.release != pointer.watched_release:
        return f"{decision.release} is no longer the release under watch"
    return None


def idempotency_key(decision: Decision, pointer: PointerState) -> str:
    """One key per (service, release, episode, components) rolled back: a repeat of the
    same decision (after a restart, say) changes nothing, while the release promoted again
    (a new episode: ``pointer.watched_since``) can be rolled back again."""
    components = ",".join(decision.components) or "*"
    return f"{decision.service}:{decision.release}@{pointer.watched_since}:rollback:{components}"


def rollback_command(decision: Decision, pointer: PointerState, now: float,
                     secret: bytes, ttl_s: float = COMMAND_TTL_S) -> Command:
    """The signed command of a rollback decision, a compare-and-set on the pointer's epoch."""
    evidence: dict[str, Any] = {"verdict": decision.verdict, **decision.evidence}
    command = new_command(
        decision.service,
        "rollback",
        f"rule:{decision.evidence.get('rule', 'policy')}",
        now,
        ttl_s=ttl_s,
        idempotency_key=idempotency_key(decision, pointer),
        release=decision.to or None,
        components=tuple(decision.components),
        reason=decision.reason,
        evidence=evidence,
        expected_epoch=pointer.epoch,
    )
    return sign(command, secret)


def respond(decision: Decision, pointer: PointerState | None, now: float,
            secret: bytes, ttl_s: float = COMMAND_TTL_S) -> Command | Suppression | None:
    """A rollback decision's signed command, or the suppression that stops it; None for a
    decision that only alerts. The steps of a staged rollback (a ``stage`` decision, and a
    ``rollback`` or ``restore`` decision of a staged rule) go to :func:`staged_command`."""
    if decision.action not in ACTING:
        return None
    blocked = why_not_act(decision, pointer)
    if blocked is not None:
        return Suppression(blocked)
    assert pointer is not None
    if "staged" in decision.evidence:
        try:
            return staged_command(decision, pointer, now, secret, ttl_s)
        except NotStaged as exc:
            return Suppression(str(exc))
    return rollback_command(decision, pointer, now, secret, ttl_s)
