"""The worker's run of one service's guarded rollout: the :class:`~detectors.rollout.Ramp`
and what ties it to the rollout stored with the pointer, kept with the monitor's state.

>>> from rollguard.detectors.policy import default_policy
>>> from rollguard.detectors.rollout_plan import RolloutPlan
>>> run = RolloutRun.begin("c1", RolloutPlan(steps=(10.0, 100.0)), default_policy(), 0.0, "c1")
>>> RolloutRun.from_dict(run.to_dict()).to_dict() == run.to_dict()
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollguard.detectors.policy import Policy
from rollguard.detectors.rollout import RUNNING, Ramp, gated_metrics
from rollguard.detectors.rollout_plan import RolloutPlan


@dataclass
class RolloutRun:
    """``id``: the rollout's (its start command's); ``seen``: the id of the last person's
    command the ramp has carried out; ``sent_epoch``: the pointer's epoch when the ramp's
    last move was sent, until the pointer shows it (0: none in flight); ``held``: the hold
    announced that the ramp itself does not know of (``pinned``), so it is told once."""

    id: str
    ramp: Ramp
    seen: str
    sent_epoch: int = 0
    held: str = ""

    @classmethod
    def begin(cls, rollout_id: str, plan: RolloutPlan, policy: Policy, now: float,
              seen: str) -> RolloutRun:
        """A run at the plan's first step from ``now`` (event time)."""
        ramp = Ramp(plan, gated_metrics(policy), policy.evidence_threshold, now)
        return cls(rollout_id, ramp, seen)

    @property
    def state(self) -> str:
        """``running``, ``held`` (a pin, or traffic too thin for the step), ``awaiting``
        (a person's approval), ``paused``, ``aborted`` or ``stable``.

        >>> from rollguard.detectors.policy import default_policy
        >>> run = RolloutRun.begin("c1", RolloutPlan(), default_policy(), 0.0, "c1")
        >>> run.state, RolloutRun("c1", run.ramp, "c1", held="pinned").state
        ('running', 'held')
        """
        if self.held or (self.ramp.status == RUNNING
                         and self.ramp.topic.startswith(("thin", "limit"))):
            return "held"
        return self.ramp.status

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ramp": self.ramp.to_dict(), "seen": self.seen,
                "sent_epoch": self.sent_epoch, "held": self.held}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutRun:
        return cls(str(data["id"]), Ramp.from_dict(data["ramp"]), str(data["seen"]),
                   int(data["sent_epoch"]), str(data["held"]))
