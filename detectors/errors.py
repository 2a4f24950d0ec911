"""The errors the pure core raises, and the root of rollguard's one exception hierarchy.

They live here so that ``detectors/`` imports nothing of the edges; ``rollguard.base.errors``
re-exports them with the rest of the hierarchy, and is where to import them from elsewhere.
"""

from __future__ import annotations


class RollguardError(Exception):
    """Base class of every error rollguard raises on purpose."""


class ConfigError(RollguardError):
    """A setting, policy file or command-line value is wrong."""


class InvalidEvent(RollguardError):
    """An evaluation event was rejected; ``reason`` is a short, countable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class StateError(RollguardError):
    """Serialised detector state cannot be read: corrupt, or written by another version."""


class RolloutRefused(RollguardError):
    """A person's command to a guarded rollout does not fit its state (an approval of a step
    that needs none, a resume of a rollout that is not paused, any command after its end)."""
