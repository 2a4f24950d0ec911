"""Per-event accumulation into event-time buckets, and the decayed reference of a release.

This is the only code that runs once per event, so it works on plain lists and dicts:
``[n, sum, sum_of_squares]`` for rates, shares and means, ``[n, {bin: count}]`` for quantiles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from detectors.histogram import INV_LOG_RATIO, ZERO_BIN
from detectors.policy import Policy

RATE, SHARE, MEAN, QUANTILE = 0, 1, 2, 3
KINDS = {"rate": RATE, "share": SHARE, "mean": MEAN, "quantile": QUANTILE}

Bucket = dict[str, list[Any]]
"""One release's sums for one bucket, keyed by metric name."""


def compile_slots(policy: Policy) -> dict[str, tuple[int, float]]:
    """Map each watched metric to ``(kind, share threshold)`` for the per-event path."""
    return {name: (KINDS[r.statistic], r.threshold) for name, r in policy.metrics.items()}


def add_event(bucket: Bucket, metrics: Mapping[str, float],
              slots: Mapping[str, tuple[int, float]],
              clips: Mapping[str, tuple[float, float]]) -> None:
    """Add one event's metrics to a bucket; metrics the policy does not name are ignored.

    Mean metrics are clipped to the baseline's plausible range (``clips``) so that one absurd
    value cannot move a mean by itself.

    >>> b: Bucket = {}
    >>> slots = {"error": (RATE, 0.5), "toxicity": (SHARE, 0.5)}
    >>> add_event(b, {"error": 1.0, "toxicity": 0.7, "other": 3.0}, slots, {})
    >>> add_event(b, {"error": 0.0}, slots, {})
    >>> b
    {'error': [2, 1.0, 1.0], 'toxicity': [1, 1.0, 1.0]}
    """
    for name, value in metrics.items():
        slot = slots.get(name)
        if slot is None:
            continue
        kind = slot[0]
        if kind == QUANTILE:
            index = math.floor(math.log(value) * INV_LOG_RATIO) if value > 0.0 else ZERO_BIN
            entry = bucket.get(name)
            if entry is None:
                bucket[name] = [1, {index: 1}]
            else:
                entry[0] += 1
                hist = entry[1]
                hist[index] = hist.get(index, 0) + 1
            continue
        if kind == SHARE:
            value = 1.0 if value >= slot[1] else 0.0
        elif kind == MEAN:
            clip = clips.get(name)
            if clip is not None:
                value = clip[0] if value < clip[0] else clip[1] if value > clip[1] else value
        entry = bucket.get(name)
        if entry is None:
            bucket[name] = [1, value, value * value]
        else:
            entry[0] += 1
            entry[1] += value
            entry[2] += value * value


def fold(reference: Bucket, bucket: Bucket, decay: float, prune: float = 1e-3) -> None:
    """Age ``reference`` by ``decay`` and add ``bucket`` to it, metric by metric.

    A metric absent from the bucket is not aged: when a release stops serving, its
    reference freezes and becomes its recent history (the baseline of a full cutover).
    """
    for name, entry in bucket.items():
        ref = reference.get(name)
        if len(entry) == 2:  # quantile: [n, hist]
            if ref is None:
                reference[name] = [float(entry[0]), {b: float(c) for b, c in entry[1].items()}]
                continue
            ref[0] = ref[0] * decay + entry[0]
            hist: dict[int, float] = ref[1]
            for b in list(hist):
                weight = hist[b] * decay
                if weight < prune:
                    del hist[b]  # keeps the reference bounded however long it runs
                else:
                    hist[b] = weight
            for b, c in entry[1].items():
                hist[b] = hist.get(b, 0.0) + c
        elif ref is None:
            reference[name] = [float(entry[0]), float(entry[1]), float(entry[2])]
        else:
            ref[0] = ref[0] * decay + entry[0]
            ref[1] = ref[1] * decay + entry[1]
            ref[2] = ref[2] * decay + entry[2]


def mean_and_sd(entry: list[Any]) -> tuple[float, float]:
    """Mean and standard deviation of a ``[n, sum, sum_of_squares]`` entry."""
    n = entry[0]
    mean = entry[1] / n
    variance = max(entry[2] / n - mean * mean, 0.0)
    return mean, math.sqrt(variance)


def clip_range(entry: list[Any], sds: float = 8.0) -> tuple[float, float]:
    """The range mean values are clipped to: ``sds`` standard deviations around the mean."""
    mean, sd = mean_and_sd(entry)
    spread = sds * max(sd, 1e-9 + abs(mean) * 0.01)
    return mean - spread, mean + spread
