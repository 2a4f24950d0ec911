"""Bucket sums of a release's events, and the decayed reference of a release.

Plain lists and dicts, cheap to build and to serialise: ``[n, sum, sum_of_squares]`` for
rates, shares and means, ``[n, {bin: count}]`` for quantiles.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import mul
from typing import Any

from rollguard.detectors.histogram import INV_LOG_RATIO, ZERO_BIN
from rollguard.detectors.policy import Policy

RATE, SHARE, MEAN, QUANTILE = 0, 1, 2, 3
KINDS = {"rate": RATE, "share": SHARE, "mean": MEAN, "quantile": QUANTILE}

Bucket = dict[str, list[Any]]
"""One release's sums for one bucket, keyed by metric name."""


def compile_slots(policy: Policy) -> dict[str, tuple[int, float]]:
    """Map each watched metric to ``(kind, share threshold)`` for the per-event path."""
    return {name: (KINDS[r.statistic], r.threshold) for name, r in policy.metrics.items()}


Columns = Mapping[str, Sequence[float]]
"""Metric name -> values of events that came as a block (:mod:`detectors.blocks`)."""


def summarise(events: Sequence[Mapping[str, float]], slots: Mapping[str, tuple[int, float]],
              clips: Mapping[str, tuple[float, float]], carried: Bucket | None = None,
              columns: Columns | None = None) -> Bucket:
    """Sum one release's events of a bucket; metrics the policy does not name are ignored.

    Done once per bucket over the whole list (comprehensions, no per-event calls): this is
    what keeps the per-event cost of :meth:`ServiceMonitor.observe` to an append. Mean
    metrics are clipped to the baseline's plausible range (``clips``) so that one absurd
    value cannot move a mean by itself. ``carried`` holds the exact partial sums of earlier
    events of the same bucket (see :func:`carry`); sums are correctly rounded (``fsum``), so
    they are the same whether or not part of the bucket went through a state round trip.

    >>> slots = {"error": (RATE, 0.5), "toxicity": (SHARE, 0.5), "latency_ms": (QUANTILE, 0)}
    >>> events = [{"error": 1.0, "toxicity": 0.7, "other": 3.0, "latency_ms": 1.0},
    ...           {"error": 0.0, "latency_ms": 1.0}]
    >>> summarise(events, slots, {})
    {'error': [2, 1.0, 1.0], 'toxicity': [1, 1.0, 1.0], 'latency_ms': [2, {0: 2}]}
    >>> summarise(events[1:], slots, {}, carry(events[:1], slots, {})) == summarise(
    ...     events, slots, {})
    True
    """
    return _sums(events, slots, clips, carried, columns, math.fsum)


def carry(events: Sequence[Mapping[str, float]], slots: Mapping[str, tuple[int, float]],
          clips: Mapping[str, tuple[float, float]], carried: Bucket | None = None,
          columns: Columns | None = None) -> Bucket:
    """The events of an open bucket as exact partial sums, for serialising its state.

    Non-quantile entries are ``[n, partials of the sum, partials of the squares]`` where the
    partials are floats whose exact sum is the exact sum of the values; quantile entries are
    ``[n, {bin: count}]``.
    """
    return _sums(events, slots, clips, carried, columns, _partials)


def _sums(events: Sequence[Mapping[str, float]], slots: Mapping[str, tuple[int, float]],
          clips: Mapping[str, tuple[float, float]], carried: Bucket | None,
          columns: Columns | None, total: Callable[[list[float]], Any]) -> Bucket:
    # One pass per metric, in C where it can be (map, min, max, Counter): histograms for
    # quantiles; for the others the values (shares as a count, means clipped) and their
    # squares, each reduced by ``total`` together with the carried partial sums.
    bucket: Bucket = {}
    for name, (kind, threshold) in slots.items():
        values: Sequence[float] = [m[name] for m in events if name in m] if events else []
        if columns and name in columns:
            values = [*values, *columns[name]] if values else columns[name]
        before = carried.get(name) if carried else None
        if not values and before is None:
            continue
        n = len(values) + (before[0] if before else 0)
        if kind == QUANTILE:
            hist = Counter(_bins(values))
            if before:
                hist.update(before[1])
            bucket[name] = [n, dict(sorted(hist.items()))]
            continue
        if kind == SHARE:  # a share's values are 0 or 1: their sum and sum of squares agree
            above = float(sum(map(float(threshold).__le__, values)))  # v >= threshold
            values = squares = [above]
        else:
            if kind == MEAN and name in clips and values:
                lo, hi = clips[name]
                if min(values) < lo or max(values) > hi:
                    values = [lo if v < lo else hi if v > hi else v for v in values]
            squares = list(map(mul, values, values))
        if before:
            values, squares = [*before[1], *values], [*before[2], *squares]
        bucket[name] = [n, total(list(values)), total(squares)]
    return bucket


def _bins(values: Sequence[float]) -> Iterable[int]:
    # histogram.bin_of of each value; without a zero among them, all in C.
    if values and min(values) > 0.0:
        return map(math.floor, map(INV_LOG_RATIO.__mul__, map(math.log, values)))
    return [math.floor(math.log(v) * INV_LOG_RATIO) if v > 0.0 else ZERO_BIN for v in values]


def _partials(values: list[float]) -> list[float]:
    # Floats whose exact sum is the exact sum of the values: the correctly rounded sum, then
    # the correctly rounded remainder, until nothing remains. Each step is a C pass (fsum);
    # two or three suffice for real data. A rounded remainder of 0.0 means an exact 0, since
    # a sum of floats is a multiple of the smallest subnormal.
    partials: list[float] = []
    rest = math.fsum(values)
    while rest:
        partials.append(rest)
        rest = math.fsum([*values, *[-p for p in partials]])
    return partials


def fold(reference: Bucket, bucket: Bucket, decay: float, prune: float = 1e-3) -> None:
    """Age ``reference`` by ``decay`` and add ``bucket`` to it, metric by metric.

    A metric absent from the bucket is not aged: when a release stops serving, its
    reference freezes and becomes its recent history (the baseline of a full cutover).
    Histograms are aged lazily: ``[w, hist, g]`` stores weights multiplied by ``g``, which
    grows by ``1 / decay`` per fold, so a fold touches only the bins of the new bucket.

    >>> ref: Bucket = {}
    >>> fold(ref, {"latency_ms": [2, {5: 2}]}, decay=0.5)
    >>> fold(ref, {"latency_ms": [1, {6: 1}]}, decay=0.5)
    >>> w, hist, scale = ref["latency_ms"]
    >>> weight(ref["latency_ms"]), {b: v / scale for b, v in hist.items()}
    (2.0, {5: 1.0, 6: 1.0})
    """
    for name, entry in bucket.items():
        ref = reference.get(name)
        if type(entry[1]) is dict:  # quantile: [n, hist]
            if ref is None:
                reference[name] = [float(entry[0]), {b: float(c) for b, c in entry[1].items()},
                                   1.0]
                continue
            scale = ref[2] / decay
            hist: dict[int, float] = ref[1]
            for b, c in entry[1].items():
                hist[b] = hist.get(b, 0.0) + c * scale
            ref[0] += entry[0] * scale
            ref[2] = scale
            if scale > 1e6:  # renormalise now and then; drop bins that have faded away
                ref[1] = {b: w / scale for b, w in hist.items() if w / scale >= prune}
                ref[0] /= scale
                ref[2] = 1.0
        elif ref is None:
            reference[name] = [float(entry[0]), float(entry[1]), float(entry[2])]
        else:
            ref[0] = ref[0] * decay + entry[0]
            ref[1] = ref[1] * decay + entry[1]
            ref[2] = ref[2] * decay + entry[2]


def weight(ref: list[Any]) -> float:
    """The (decayed) number of samples behind a reference entry."""
    return float(ref[0] / ref[2]) if type(ref[1]) is dict else float(ref[0])


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
