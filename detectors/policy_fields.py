"""Checking one field of a policy document: each check returns the field's value (or its
default) or raises :class:`~detectors.errors.ConfigError` naming the field and the problem.

>>> number({"tolerance": 0}, "tolerance", "metrics.error.", 0.1)
Traceback (most recent call last):
...
rollguard.detectors.errors.ConfigError: metrics.error.tolerance: must be > 0.0, got 0
>>> choice({}, "worse", "metrics.error.", "higher", ("higher", "lower"))
'higher'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollguard.detectors.errors import ConfigError

_INF = float("inf")


def number(raw: Mapping[str, Any], key: str, where: str, default: float, *,
           low: float = 0.0, high: float = _INF, strict_low: bool = True) -> float:
    """A finite number above ``low`` (or at it, unless ``strict_low``) and at most ``high``."""
    value = raw.get(key, default)
    if type(value) not in (int, float):
        raise ConfigError(f"{where}{key}: must be a number, got {value!r}")
    found = float(value)
    if found != found or found in (_INF, -_INF):  # .nan/.inf would switch a rule off
        raise ConfigError(f"{where}{key}: must be a finite number, got {value!r}")
    too_low = found <= low if strict_low else found < low
    if too_low or found > high:
        bound = f"> {low}" if strict_low else f">= {low}"
        extra = f" and <= {high}" if high != _INF else ""
        raise ConfigError(f"{where}{key}: must be {bound}{extra}, got {value!r}")
    return found


def choice(raw: Mapping[str, Any], key: str, where: str, default: str,
           choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    value = raw.get(key, default)
    if value not in choices:
        raise ConfigError(f"{where}{key}: must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def components(raw: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """The components a rule covers: ``all`` (the empty tuple) or a list of names."""
    value = raw.get("components", "all")
    if value == "all" or value == ["all"]:
        return ()
    if not isinstance(value, list) or not value or not all(
        isinstance(c, str) and c for c in value
    ):
        raise ConfigError(f"{where}components: must be 'all' or a list of names, got {value!r}")
    return tuple(value)


def flag(raw: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    """True or false (not a number or a string that looks like one)."""
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}{key}: must be true or false, got {value!r}")
    return value


def known_only(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """Refuse a field not in ``allowed``."""
    # A misspelt key silently ignored would leave a default the author did not mean.
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}{unknown[0]}: unknown field")
