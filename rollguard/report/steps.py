"""The moments an incident's story is told in (:mod:`rollguard.report.story`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Record = Mapping[str, Any]
FLIPPED = ("applied", "already_applied")


@dataclass(frozen=True)
class Step:
    """One moment of an incident: when (wall clock), what kind, one line, and its details."""

    at: float
    # deployed | alert | decision | approval-needed | approved | flipped | refused | rollout
    kind: str
    text: str
    details: dict[str, Any] = field(default_factory=dict)


def number_of(record: Record, name: str) -> float:
    """A record's number ``name``, 0.0 when absent or not a number."""
    value = record.get(name)
    return float(value) if isinstance(value, int | float) else 0.0


def command_of(entry: Record) -> Mapping[str, Any]:
    """The command a history entry carries, empty when it has none."""
    found = entry.get("command")
    return found if isinstance(found, Mapping) else {}
