"""One step of a guarded rollout: the evidence gathered at it, per metric, and what it still
lacks before it can be passed (measuring; :mod:`detectors.rollout` decides).

A step is passed when, for every metric whose rule could roll back, the candidate's
non-inferiority evidence (:mod:`detectors.noninferiority`) summed over the step reaches the
policy's ``evidence_threshold`` over at least the plan's ``min_samples``. A metric that had no
data, or only data the baseline was too thin to judge, lacks everything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollguard.detectors.noninferiority import StepReading

NEVER = 10**9  # samples: more than any step sees


@dataclass
class MetricTally:
    """One metric's evidence at the current step: judged ``samples`` and their ``llr``
    (``log L(no worse) / L(worse by the tolerance)``), the expected evidence per sample of an
    equal candidate (the last bucket's), and ``unjudged`` samples (the baseline was too thin).

    >>> t = MetricTally()
    >>> t.add(StepReading(100, 0.5, 0.004)); t.add(StepReading(40, None))
    >>> t.to_list()
    [100, 0.5, 0.004, 40]
    """

    samples: int = 0
    llr: float = 0.0
    per_sample: float = 0.0
    unjudged: int = 0

    def add(self, reading: StepReading) -> None:
        if reading.llr is None:
            self.unjudged += reading.samples
            return
        self.samples += reading.samples
        self.llr += reading.llr
        self.per_sample = reading.per_sample

    def to_list(self) -> list[Any]:
        return [self.samples, self.llr, self.per_sample, self.unjudged]

    @classmethod
    def from_list(cls, data: Sequence[Any]) -> MetricTally:
        return cls(int(data[0]), float(data[1]), float(data[2]), int(data[3]))


@dataclass(frozen=True)
class Lack:
    """What one metric still lacks at a step: about ``needed`` more samples, and ``why``."""

    metric: str
    needed: int
    why: str


def lacking(tallies: Mapping[str, MetricTally], gated: Sequence[str], min_samples: int,
            threshold: float) -> list[Lack]:
    """What each gated metric lacks before the step can be passed (empty: nothing). A
    metric without judged data needs ``min_samples`` at least.

    >>> tallies = {"error": MetricTally(900, 3.0, 0.004), "cost_usd": MetricTally(900, 40.0, 0.3)}
    >>> lacking(tallies, ("error", "cost_usd", "accuracy"), 200, 5.0)  # doctest: +NORMALIZE_WHITESPACE
    [Lack(metric='error', needed=500, why='evidence 3.00 of 5 nats over 900 samples'),
     Lack(metric='accuracy', needed=200, why='no data')]
    """
    out = []
    for name in gated:
        tally = tallies.get(name) or MetricTally()
        if tally.samples == 0:
            why = "baseline too thin to judge against" if tally.unjudged else "no data"
            out.append(Lack(name, min_samples, why))
            continue
        missing = max(0.0, threshold - tally.llr)
        more = 0
        if missing:  # an equal candidate's expected evidence per sample says how many more
            # (capped: a baseline that leaves almost no room makes the count astronomical)
            more = math.ceil(min(missing / tally.per_sample, NEVER)) if tally.per_sample > 0 \
                else NEVER
        needed = max(min_samples - tally.samples, more)
        if needed > 0:
            out.append(Lack(name, needed, f"evidence {tally.llr:.2f} of {threshold:g} nats over "
                                          f"{tally.samples} samples"))
    return out


def too_thin(lacks: Sequence[Lack], tallies: Mapping[str, MetricTally], elapsed: float,
             limit: float) -> tuple[list[str], int]:
    """``(reasons, needed)``: the metrics whose traffic so far cannot bring what they lack
    within the step's ``limit`` (seconds, ``elapsed`` of them gone), each with the traffic it
    would need, and the most samples one of them still needs (0: none is too thin).

    >>> lack = Lack("error", 1000, "evidence 1.00 of 5 nats over 300 samples")
    >>> too_thin([lack], {"error": MetricTally(300, 1.0, 0.004)}, 600.0, 1200.0)
    (['error needs about 1000 more samples (evidence 1.00 of 5 nats over 300 samples): 1.67/s for the 600 s left, it gets 0.5/s'], 1000)
    """
    reasons: list[str] = []
    needed = 0
    left = limit - elapsed
    for lack in lacks:
        tally = tallies.get(lack.metric) or MetricTally()
        rate = tally.samples / elapsed if elapsed > 0 else 0.0
        if left > 0 and rate * left >= lack.needed:
            continue
        want = f"{lack.needed / left:.3g}/s for the {left:.0f} s left" if left > 0 else (
            "the step's limit has passed")
        reasons.append(f"{lack.metric} needs about {lack.needed} more samples ({lack.why}): "
                       f"{want}, it gets {rate:.3g}/s")
        needed = max(needed, lack.needed)
    return reasons, needed
