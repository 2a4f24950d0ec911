"""One exception hierarchy: the core's errors and the edges' share the root and one import."""

from __future__ import annotations

import pytest

import rollguard.base.errors
import rollguard.detectors.errors


@pytest.mark.parametrize("name", rollguard.base.errors.__all__)
def test_every_error_is_a_rollguard_error(name: str) -> None:
    """``except RollguardError`` catches every error rollguard raises on purpose."""
    assert issubclass(getattr(rollguard.base.errors, name), rollguard.base.errors.RollguardError)


@pytest.mark.parametrize("name", ["RollguardError", "ConfigError", "InvalidEvent", "StateError"])
def test_the_core_errors_are_the_very_classes_rollguard_errors_exports(name: str) -> None:
    """The core defines them and ``rollguard.base.errors`` re-exports them: one class, not a
    copy."""
    assert getattr(rollguard.base.errors, name) is getattr(rollguard.detectors.errors, name)


def test_an_invalid_event_from_the_core_is_caught_as_the_edge_expects() -> None:
    """A core rejection is caught by the edge's ``except InvalidEvent`` and keeps its reason."""
    from rollguard.detectors.events import validate_event

    with pytest.raises(rollguard.base.errors.InvalidEvent) as caught:
        validate_event([])
    assert caught.value.reason == "not_object"
