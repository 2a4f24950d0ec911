"""What planning a command gives (a change, no change, or a refusal), and the next pointer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollguard.actions.commands import Command
from rollguard.actions.releases import Release
from rollguard.actions.state import PointerState


@dataclass(frozen=True)
class Change:
    """Write ``state`` (and register ``derived`` first, when a partial rollback made one)."""

    state: PointerState
    message: str
    derived: Release | None = None


@dataclass(frozen=True)
class NoChange:
    """The pointer already is what the command asks for: report it as already applied."""

    message: str


@dataclass(frozen=True)
class Refusal:
    """The command cannot apply; ``reason`` is a short code recorded in the history."""

    reason: str
    message: str


Plan = Change | NoChange | Refusal

# The pointer fields of a service that stages nothing: no candidate, no share, no cohorts.
NO_CANDIDATE: dict[str, Any] = {
    "candidate": None, "candidate_components": None, "percent": 0.0, "cohorts": (),
}


def advanced(state: PointerState, command: Command, now: float,
             **changes: object) -> PointerState:
    """``state`` one epoch on, written by ``command`` at ``now``, with ``changes``."""
    return state.with_changes(
        epoch=state.epoch + 1,
        updated_at=now,
        updated_by=command.issued_by,
        command_id=command.command_id,
        **changes,
    )
