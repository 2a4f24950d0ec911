"""The pin rule: who may flip a pinned service's pointer, decided in one place.

A pinned service is flipped only by people: by hand with ``--force``, or by a rule's command
once its approvers approved it (the actuator re-signs it with force, :func:`approved_force`).
A rule's rollback that waits for approvers is kept, since they may override the pin; any
other flip a rule issues is refused. The decision layer (``respond.py``), the planner
(``plan.py``) and the actuator (``actuator.py``) all ask this module.

>>> pin_verdict(False, by_rule=True)
<PinVerdict.FREE: 'free'>
>>> pin_verdict(True, by_rule=True)
<PinVerdict.REFUSED_AUTOMATIC: 'refused-automatic'>
>>> pin_verdict(True, by_rule=True, awaits_approval=True)
<PinVerdict.HOLD: 'hold'>
>>> pin_verdict(True, by_rule=True, force=True, approved=True)
<PinVerdict.FREE: 'free'>
>>> pin_verdict(True, by_rule=False)
<PinVerdict.NEEDS_FORCE: 'needs-force'>
>>> pin_verdict(True, by_rule=False, force=True)
<PinVerdict.FREE: 'free'>
"""

from __future__ import annotations

from enum import StrEnum


class PinVerdict(StrEnum):
    """What the pin says about one flip of a service's pointer."""

    FREE = "free"
    """Not pinned, or the pin is overridden: the flip may go ahead."""
    HOLD = "hold"
    """A rule's rollback that waits for approvers: kept for them, who may override the pin."""
    REFUSED_AUTOMATIC = "refused-automatic"
    """A rule's flip of a pinned service without its approvers: refused."""
    NEEDS_FORCE = "needs-force"
    """A person's flip of a pinned service without ``--force``: refused."""


def pin_verdict(pinned: bool, *, by_rule: bool, force: bool = False, approved: bool = False,
                awaits_approval: bool = False) -> PinVerdict:
    """The pin rule for one flip.

    Parameters
    ----------
    pinned
        Whether the service's pointer is pinned.
    by_rule
        The flip was issued by a policy rule, not by a person.
    force
        The flip asks to override a pin (``--force``, or set by the actuator on approval).
    approved
        The rule's flip carries the approvers who released it.
    awaits_approval
        The rule's rollback will wait for approvers before it runs.
    """
    if not pinned:
        return PinVerdict.FREE
    if not by_rule:
        return PinVerdict.FREE if force else PinVerdict.NEEDS_FORCE
    if force and approved:
        return PinVerdict.FREE
    return PinVerdict.HOLD if awaits_approval else PinVerdict.REFUSED_AUTOMATIC


def approved_force(force: bool, pinned: bool) -> bool:
    """The ``force`` of a rule's command re-signed on its approval: approvers of a pinned
    service's rollback override the pin, as ``--force`` does.

    >>> approved_force(False, pinned=True), approved_force(False, pinned=False)
    (True, False)
    """
    return force or pinned
