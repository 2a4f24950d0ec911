"""rollguard: watch generative-AI releases in production and roll them back when they regress.

The public API: every name in ``__all__`` is importable from here, e.g.
``from rollguard import Emitter, PointerReader``. Each is loaded on first use (PEP 562), so
``import rollguard`` stays cheap and loads none of Kafka, Redis or Faust until a name that
needs them is asked for.

A plain install is the client of a serving process: ``PointerReader``, ``SyncPointerReader``,
``Emitter``, ``BackgroundEmitter``, the pointer store and the errors. Names that need the
``worker`` extra (``ServiceMonitor``, policies, ``replay_events``) raise :class:`MissingExtra`
without it, saying what to install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers see; the same names and modules as _EXPORTS below
    from rollguard.actions.pointer import PointerStore
    from rollguard.actions.reader import PointerReader
    from rollguard.actions.releases import Release
    from rollguard.actions.script import Outcome
    from rollguard.actions.state import PointerState
    from rollguard.actions.sync_reader import SyncPointerReader
    from rollguard.analysis.replay import replay_events
    from rollguard.base.errors import (
        CommandRefused,
        MissingExtra,
        PointerConflict,
        ReleaseConflict,
        RollbackError,
        ServicePinned,
        ServiceUnavailable,
        UnknownComponent,
        UnknownRelease,
        UnknownService,
    )
    from rollguard.detectors.decision import Decision, DecisionAction, Verdict
    from rollguard.detectors.errors import ConfigError, InvalidEvent, RollguardError, StateError
    from rollguard.detectors.events import Event, parse_event, validate_event
    from rollguard.detectors.monitor import ServiceMonitor
    from rollguard.detectors.policy import (
        Policy,
        RuleAction,
        default_policy,
        load_policy,
        policy_from_dict,
    )
    from rollguard.streams.emitter import BackgroundEmitter, Emitter

# name -> the module that defines it (tests/unit/test_exported_members.py checks both lists)
_EXPORTS: dict[str, str] = {
    "PointerStore": "rollguard.actions.pointer",
    "PointerReader": "rollguard.actions.reader",
    "Release": "rollguard.actions.releases",
    "Outcome": "rollguard.actions.script",
    "PointerState": "rollguard.actions.state",
    "SyncPointerReader": "rollguard.actions.sync_reader",
    **dict.fromkeys(("Decision", "DecisionAction", "Verdict"), "rollguard.detectors.decision"),
    **dict.fromkeys(("ConfigError", "InvalidEvent", "RollguardError", "StateError"),
                    "rollguard.detectors.errors"),
    **dict.fromkeys(("Event", "parse_event", "validate_event"), "rollguard.detectors.events"),
    "ServiceMonitor": "rollguard.detectors.monitor",
    **dict.fromkeys(("Policy", "RuleAction", "default_policy", "load_policy",
                     "policy_from_dict"), "rollguard.detectors.policy"),
    **dict.fromkeys(("CommandRefused", "MissingExtra", "PointerConflict", "ReleaseConflict",
                     "RollbackError", "ServicePinned", "ServiceUnavailable", "UnknownComponent",
                     "UnknownRelease", "UnknownService"), "rollguard.base.errors"),
    "replay_events": "rollguard.analysis.replay",
    **dict.fromkeys(("BackgroundEmitter", "Emitter"), "rollguard.streams.emitter"),
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
    "MissingExtra",
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
    try:
        value = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        from rollguard.base.extras import missing_extra

        missing = missing_extra(exc, f"rollguard.{name}")
        if missing is None:
            raise
        raise missing from exc
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
