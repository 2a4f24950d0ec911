"""The arguments and results of ``actions/lua/apply.lua``, kept in step with its header.

One builder of the ARGV list (:func:`script_args`) and one reader of the result
(:func:`outcome_of`), so the script and its callers cannot disagree on an argument's place.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from rollguard.actions.commands import Command
from rollguard.actions.keys import ServiceKeys
from rollguard.actions.planned import Change, Plan, Refusal
from rollguard.actions.state import PointerState, encode
from rollguard.base.errors import (
    CommandRefused,
    PointerConflict,
    RollbackError,
    ServicePinned,
    UnknownComponent,
    UnknownRelease,
    UnknownService,
)

Status = Literal["applied", "already_applied", "conflict", "refused"]

# An idempotency key (and a command id) is remembered this long: far longer than any retry.
IDEMPOTENCY_TTL_S = 7 * 24 * 3600
# The history's signed_by of a command signed with the deployment secret (ROLLGUARD_SECRET).
DEPLOYMENT_SECRET = "deployment-secret"
# A command carried out this long after it was received waited for Redis (an outage): its
# history entry and outcome record say so.
LATE_S = 2.0

ERRORS: dict[str, type[RollbackError]] = {
    "unknown_service": UnknownService,
    "unknown_release": UnknownRelease,
    "unknown_component": UnknownComponent,
    "pinned": ServicePinned,
    "epoch_moved": PointerConflict,
}



def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Outcome:
    """What happened to one command; ``code`` says why when it did not apply."""

    status: Status
    command_id: str
    service: str
    epoch_before: int
    epoch_after: int
    message: str
    code: str = ""
    history_id: str = ""
    state: PointerState | None = None

    @property
    def ok(self) -> bool:
        """Applied now or before: the pointer is as the command asked."""
        return self.status in ("applied", "already_applied")

    def raise_for_status(self) -> Outcome:
        """Return self if ``ok``, else raise the matching RollbackError."""
        if self.ok:
            return self
        error = ERRORS.get(self.code, CommandRefused if self.status == "refused" else RollbackError)
        raise error(f"{self.service}: {self.status} ({self.code}): {self.message}")


def script_args(mode: str, epoch: int, expected: int | None, change: Change | None,
                 entry: list[str], planned: Plan, idem: dict[str, Any] | None,
                 keys: ServiceKeys, now: float, request: str,
                 guard: dict[str, Any] | None = None) -> list[bytes | str | int | float]:
    """ARGV of actions/lua/apply.lua, in the order its header gives."""
    derived = change.derived if change is not None else None
    return [
        mode,
        epoch,
        "" if expected is None else expected,
        b"" if change is None else encode(change.state),
        orjson.dumps(entry),
        planned.reason if isinstance(planned, Refusal) else "",
        planned.message,
        orjson.dumps(idem or {}),
        IDEMPOTENCY_TTL_S,
        "" if derived is None else derived.name,
        b"" if derived is None else derived.to_json(),
        keys.changes,
        now,
        request,
        keys.legacy_changes,
        b"" if guard is None else orjson.dumps(guard),
    ]


def request_digest(command: Command) -> str:
    """What a command asks for, whoever issued it when: a repeat of the same decision has
    the same digest; another request under a used idempotency key does not."""
    asked = orjson.dumps([command.service, command.op, command.release,
                          command.components, command.percent, command.cohorts,
                          command.force])
    return hashlib.sha256(asked).hexdigest()


def outcome_of(result: Any, command_id: str, service: str,
             state: PointerState | None) -> Outcome:
    status = _text(result[0])
    return Outcome(
        status=status,  # type: ignore[arg-type]
        command_id=command_id,
        service=service,
        epoch_before=int(result[3]),
        epoch_after=int(result[4]),
        message=_text(result[2]),
        code=_text(result[1]),
        history_id=_text(result[5]),
        state=_changed_at(state, result) if status == "applied" else None,
    )


def _changed_at(state: PointerState | None, result: Any) -> PointerState | None:
    # The script stamps the pointer with Redis's TIME of the change (its 7th result).
    if state is None or len(result) < 7:
        return state
    return state.with_changes(updated_at=float(_text(result[6])))


def history_entry(command: Command, now: float, received_at: float | None = None) -> list[str]:
    """The history fields describing a command (the script appends the outcome); one
    carried out :data:`LATE_S` or more after it was received also says how late.

    >>> from rollguard.actions.commands import Command
    >>> c = Command("c1", "k1", "bot", "rollback", "rule:x", 10.0, 20.0)
    >>> history_entry(c, 500.0, received_at=12.0)[-3:]
    ['12.0', 'late', 'carried out 488 s after it was received: Redis was unreachable']
    """
    entry = [
        "at", repr(now),
        "command_id", command.command_id,
        "idempotency_key", command.idempotency_key,
        "op", command.op,
        "issued_by", command.issued_by,
        # who vouched for it: an operator's own key, or the deployment secret
        "signed_by", command.signer or DEPLOYMENT_SECRET,
        "release", command.release or "",
        "command", command.to_bytes().decode(),
    ]  # fmt: skip
    waited = late_by(now, received_at)
    if waited is not None:
        entry += ["received_at", repr(received_at), "late", late_note(waited)]
    return entry


def late_by(now: float, received_at: float | None) -> float | None:
    """Seconds between a command's receipt and its execution, when :data:`LATE_S` or more."""
    if received_at is None or now - received_at < LATE_S:
        return None
    return now - received_at


def late_note(waited_s: float) -> str:
    return f"carried out {waited_s:.0f} s after it was received: Redis was unreachable"
