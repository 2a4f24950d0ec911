"""rollguard: watch generative-AI releases in production and roll them back when they regress.

The public API: every name in ``__all__`` is importable from here, e.g.
``from rollguard import Emitter, PointerReader``. Each is loaded on first use (PEP 562), so
``import rollguard`` stays cheap and loads none of Kafka, Redis or Faust until a name that
needs them is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers see; the same names and modules as _EXPORTS below
    from actions.pointer import PointerStore
    from actions.reader import PointerReader
    from actions.releases import Release
    from actions.script import Outcome
    from actions.state import PointerState
    from actions.sync_reader import SyncPointerReader
    from detectors.decision import Decision, DecisionAction, Verdict
    from detectors.errors import ConfigError, InvalidEvent, RollguardError, StateError
    from detectors.events import Event, parse_event, validate_event
    from detectors.monitor import ServiceMonitor
    from detectors.policy import Policy, RuleAction, default_policy, load_policy, policy_from_dict
    from rollguard.errors import (
        CommandRefused,
        PointerConflict,
        ReleaseConflict,
        RollbackError,
        ServicePinned,
        ServiceUnavailable,
        UnknownComponent,
        UnknownRelease,
        UnknownService,
    )
    from rollguard.replay import replay_events
    from streams.emitter import BackgroundEmitter, Emitter

# name -> the module that defines it (tests/unit/test_exported_members.py checks both lists)
_EXPORTS: dict[str, str] = {
    "PointerStore": "actions.pointer",
    "PointerReader": "actions.reader",
    "Release": "actions.releases",
    "Outcome": "actions.script",
    "PointerState": "actions.state",
    "SyncPointerReader": "actions.sync_reader",
    **dict.fromkeys(("Decision", "DecisionAction", "Verdict"), "detectors.decision"),
    **dict.fromkeys(("ConfigError", "InvalidEvent", "RollguardError", "StateError"),
                    "detectors.errors"),
    **dict.fromkeys(("Event", "parse_event", "validate_event"), "detectors.events"),
    "ServiceMonitor": "detectors.monitor",
    **dict.fromkeys(("Policy", "RuleAction", "default_policy", "load_policy",
                     "policy_from_dict"), "detectors.policy"),
    **dict.fromkeys(("CommandRefused", "PointerConflict", "ReleaseConflict", "RollbackError",
                     "ServicePinned", "ServiceUnavailable", "UnknownComponent",
                     "UnknownRelease", "UnknownService"), "rollguard.errors"),
    "replay_events": "rollguard.replay",
    **dict.fromkeys(("BackgroundEmitter", "Emitter"), "streams.emitter"),
}

__all__ = [
    "BackgroundEmitter",
    "CommandRefused",
    "ConfigError",
    "Decision",
    "DecisionAction",
    "Emitter",
    "Event",
    "InvalidEvent",
    "Outcome",
    "PointerConflict",
    "PointerReader",
    "PointerState",
    "PointerStore",
    "Policy",
    "Release",
    "ReleaseConflict",
    "RollbackError",
    "RollguardError",
    "RuleAction",
    "ServiceMonitor",
    "ServicePinned",
    "ServiceUnavailable",
    "StateError",
    "SyncPointerReader",
    "UnknownComponent",
    "UnknownRelease",
    "UnknownService",
    "Verdict",
    "default_policy",
    "load_policy",
    "parse_event",
    "policy_from_dict",
    "replay_events",
    "validate_event",
]


def __getattr__(name: str) -> object:
    """Import a public name's module on first use, then keep the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        # Also how ``from rollguard import cli`` falls through to importing the submodule.
        raise AttributeError(f"module 'rollguard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
