"""A guarded rollout's plan: the steps a release is taken through, and what each asks for.

The policy's ``rollout:`` section (every field optional; these are the defaults)::

    rollout:
      steps: [1, 5, 25, 50, 100]   # percent of the traffic, rising, the last 100
      min_seconds: 300             # at a step, at least this long ...
      min_samples: 200             # ... and this many samples of each metric that could roll back
      limit_seconds: 3600          # a step not decided within this long ...
      on_limit: hold               # ... holds where it is (hold) or ends the rollout (abort)
      on_regression: rollback      # a sustained regression ends the rollout, or pauses it
      approval_before: []          # steps a person must approve first, e.g. [50, 100]
      bake_seconds: 1800           # at 100 %, this long without a regression: stable

>>> plan = rollout_plan({"steps": [10, 100], "approval_before": [100]})
>>> plan.steps, plan.needs_approval(100), plan.needs_approval(10)
((10.0, 100.0), True, False)
>>> rollout_plan({"steps": [5, 50]})
Traceback (most recent call last):
...
rollguard.detectors.errors.ConfigError: rollout.steps: must be rising percentages above 0 ending in 100, got [5, 50]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from rollguard.detectors.errors import ConfigError
from rollguard.detectors.policy_fields import choice, known_only, number

ON_LIMIT = ("hold", "abort")
ON_REGRESSION = ("rollback", "pause")
WHERE = "rollout."


@dataclass(frozen=True)
class RolloutPlan:
    """How a release is taken forward: ``steps`` in percent (the last 100); at each, at least
    ``min_seconds`` and ``min_samples`` of every metric that could roll back before evidence
    of non-inferiority can pass it; ``limit_seconds`` to decide, then ``on_limit``;
    ``on_regression`` what the rollout does on a sustained regression (the rule acts as it
    says either way); ``approval_before`` the steps a person must approve first;
    ``bake_seconds`` at 100 % before the release is stable."""

    steps: tuple[float, ...] = (1.0, 5.0, 25.0, 50.0, 100.0)
    min_seconds: float = 300.0
    min_samples: int = 200
    limit_seconds: float = 3600.0
    on_limit: str = "hold"
    on_regression: str = "rollback"
    approval_before: tuple[float, ...] = ()
    bake_seconds: float = 1800.0

    def needs_approval(self, percent: float) -> bool:
        """Whether going to ``percent`` waits for a person."""
        return percent in self.approval_before


def _steps(raw: Mapping[str, Any]) -> tuple[float, ...]:
    steps = raw.get("steps", [1, 5, 25, 50, 100])
    if (not isinstance(steps, list) or not steps
            or not all(type(s) in (int, float) and 0 < s <= 100 for s in steps)
            or any(a >= b for a, b in pairwise(steps)) or steps[-1] != 100):
        raise ConfigError(f"{WHERE}steps: must be rising percentages above 0 ending in 100, "
                          f"got {steps!r}")
    return tuple(float(s) for s in steps)


def _gates(raw: Mapping[str, Any], steps: tuple[float, ...]) -> tuple[float, ...]:
    gates = raw.get("approval_before", [])
    if not isinstance(gates, list) or not all(type(g) in (int, float) for g in gates):
        raise ConfigError(f"{WHERE}approval_before: must be a list of steps, got {gates!r}")
    for gate in gates:
        if gate not in steps[1:]:
            # The first step is the start itself, which the operator who signed the plan made.
            raise ConfigError(f"{WHERE}approval_before: {gate!r} is not a step after the first "
                              f"(steps: {', '.join(f'{s:g}' for s in steps)})")
    return tuple(sorted(float(g) for g in set(gates)))


def rollout_plan(raw: object) -> RolloutPlan:
    """Check a policy's ``rollout`` section (None: the defaults) and build the plan."""
    if raw is None:
        return RolloutPlan()
    if not isinstance(raw, Mapping):
        raise ConfigError("rollout: must be a table of settings")
    known_only(raw, {"steps", "min_seconds", "min_samples", "limit_seconds", "on_limit",
                     "on_regression", "approval_before", "bake_seconds"}, WHERE)
    steps = _steps(raw)
    min_samples = raw.get("min_samples", 200)
    if type(min_samples) is not int or min_samples < 1:
        raise ConfigError(f"{WHERE}min_samples: must be an integer >= 1, got {min_samples!r}")
    min_seconds = number(raw, "min_seconds", WHERE, 300.0, strict_low=False)
    limit = number(raw, "limit_seconds", WHERE, 3600.0)
    if limit <= min_seconds:
        raise ConfigError(f"{WHERE}limit_seconds: must be above min_seconds ({min_seconds:g}), "
                          f"got {limit:g}")
    return RolloutPlan(
        steps=steps, min_seconds=min_seconds, min_samples=min_samples, limit_seconds=limit,
        on_limit=choice(raw, "on_limit", WHERE, "hold", ON_LIMIT),
        on_regression=choice(raw, "on_regression", WHERE, "rollback", ON_REGRESSION),
        approval_before=_gates(raw, steps),
        bake_seconds=number(raw, "bake_seconds", WHERE, 1800.0, strict_low=False))


def plan_document(plan: RolloutPlan) -> dict[str, Any]:
    """The plan as its ``rollout:`` section (what :func:`rollout_plan` reads back).

    >>> rollout_plan(plan_document(RolloutPlan(on_limit="abort"))) == RolloutPlan(on_limit="abort")
    True
    """
    return {"steps": list(plan.steps), "min_seconds": plan.min_seconds,
            "min_samples": plan.min_samples, "limit_seconds": plan.limit_seconds,
            "on_limit": plan.on_limit, "on_regression": plan.on_regression,
            "approval_before": list(plan.approval_before), "bake_seconds": plan.bake_seconds}
