"""The pin rule (actions/pin.py): who may flip a pinned service's pointer."""

from __future__ import annotations

import pytest

from rollguard.actions.pin import PinVerdict, approved_force, pin_verdict

FREE, HOLD = PinVerdict.FREE, PinVerdict.HOLD
REFUSED, NEEDS_FORCE = PinVerdict.REFUSED_AUTOMATIC, PinVerdict.NEEDS_FORCE


@pytest.mark.parametrize(("pinned", "by_rule", "force", "approved", "awaits", "expected"), [
    # not pinned: every flip goes ahead
    (False, True, False, False, False, FREE),
    (False, False, False, False, False, FREE),
    (False, True, False, False, True, FREE),
    # a person: only with --force
    (True, False, False, False, False, NEEDS_FORCE),
    (True, False, True, False, False, FREE),
    (True, False, False, True, False, NEEDS_FORCE),
    # a rule: only once approved and re-signed with force
    (True, True, False, False, False, REFUSED),
    (True, True, True, False, False, REFUSED),
    (True, True, False, True, False, REFUSED),
    (True, True, True, True, False, FREE),
    # a rule's rollback that waits for approvers is kept for them
    (True, True, False, False, True, HOLD),
    (True, True, True, True, True, FREE),
])
def test_pin_verdict(pinned: bool, by_rule: bool, force: bool, approved: bool, awaits: bool,
                     expected: PinVerdict) -> None:
    """Each combination of pin, author, force, approval and waiting has one verdict."""
    assert pin_verdict(pinned, by_rule=by_rule, force=force, approved=approved,
                       awaits_approval=awaits) is expected


@pytest.mark.parametrize(("force", "pinned", "expected"), [
    (False, False, False), (True, False, True), (False, True, True), (True, True, True),
])
def test_an_approval_forces_a_pinned_rollback(force: bool, pinned: bool, expected: bool) -> None:
    """Approvers override a pin as --force does; an unpinned command keeps its own force."""
    assert approved_force(force, pinned) is expected


def test_an_approved_command_passes_the_pin() -> None:
    """What the actuator re-signs on approval is what the planner lets through."""
    force = approved_force(False, pinned=True)
    assert pin_verdict(True, by_rule=True, force=force, approved=True) is FREE
