"""Where a service's releases stand, metric by metric: the baseline's and the candidate's
values and the tolerance band between them, read from a monitor's decayed references.

What a dashboard draws next to the decisions. Read on demand (a scrape), never per event:
each value is one division, or one pass over a histogram for a quantile.

>>> from rollguard.detectors.policy import default_policy
>>> from rollguard.detectors.monitor import ServiceMonitor
>>> from rollguard.detectors.events import Event
>>> m = ServiceMonitor("chat", default_policy())
>>> m.set_roles("v1", "v2")
>>> for i in range(40):
...     release = "v1" if i % 2 else "v2"
...     error = 1.0 if i % 4 == 0 else 0.0  # one v2 event in two fails, no v1 event does
...     _ = m.observe(Event(f"id-{i}", 1_700_000_000.0 + 2.5 * i, "chat", release, "",
...                         {"error": error}))
>>> [(s.role, s.release, s.value) for s in levels(m) if s.metric == "error"]
[('baseline', 'v1', 0.0), ('candidate', 'v2', 0.5)]
>>> rule = default_policy().metrics["error"]
>>> band(rule, 0.02) == (rule.tolerance, 0.02 + rule.tolerance)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollguard.detectors.histogram import quantile
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.policy import MetricRule


@dataclass(frozen=True, slots=True)
class Level:
    """The value of one metric of one release; ``role`` is ``baseline`` or ``candidate``."""

    release: str
    role: str
    metric: str
    value: float


def value_of(rule: MetricRule, entry: list[Any]) -> float:
    """The statistic ``rule`` names, of a reference entry (NaN when it holds no samples)."""
    if type(entry[1]) is dict:
        return quantile(entry[1], rule.q)
    return float(entry[1] / entry[0]) if entry[0] > 0 else math.nan


def band(rule: MetricRule, baseline: float) -> tuple[float, float]:
    """``(tolerance, limit)`` in the metric's unit: how much worse than ``baseline`` is still
    acceptable (a relative tolerance scales with it), and the value where that ends."""
    tolerance = rule.tolerance * abs(baseline) if rule.relative else rule.tolerance
    return tolerance, baseline + rule.sign * tolerance


def levels(monitor: ServiceMonitor) -> list[Level]:
    """Every metric's value for the stable release (the baseline) and the candidate, from
    the references folded at bucket close (so no later than the last closed bucket); the
    evaluation lane's metrics from it (a metric in both lanes: the fast lane's)."""
    out: list[Level] = []
    shown: set[tuple[str, str]] = set()
    for lane in monitor.lanes():
        cand = lane.candidate
        roles = (("baseline", lane.stable), ("candidate", cand.release if cand else None))
        for role, release in roles:
            ref: Mapping[str, list[Any]] | None = lane.reference(release) if release else None
            if release is None or not ref:
                continue
            for name, rule in lane.policy.metrics.items():
                entry = ref.get(name)
                if entry is not None and (role, name) not in shown:
                    value = value_of(rule, entry)
                    if not math.isnan(value):
                        shown.add((role, name))
                        out.append(Level(release, role, name, value))
    return out
