"""The stable release against its own history: is a shock hitting every release?

A candidate is judged against the stable release's history (its decayed reference), which
holds many samples and so makes low traffic judgeable. A shock of the whole service (a
provider outage, a surge that slows every answer) moves the stable release too; compared
with history, the candidate would be charged with it. So each metric of the stable release
is scored, bucket by bucket, with the candidate's own hypotheses against that history; a
CUSUM of that score reaching ``weather_evidence`` is a **storm**. During a storm:

* the candidate is compared with the stable release *at the same moments*: the stable's
  strata since the storm began, newest first, pooled until they hold the rule's
  ``min_samples`` (:meth:`Weather.baseline`; all of them when they hold fewer, tested
  against from a tenth of ``min_samples``, the baseline's margin making a thin one careful);
* the storm's strata never join the history: when it ends they are dropped (but for the
  calm buckets that ended it), so the baseline after it is the baseline before it. A
  storm longer than ``max_episode_seconds`` is the new normal: its strata join the history
  and it ends (it *settles*).

Buckets the CUSUM is still weighing (it is above zero, not yet at the bar) are *held* out
of the history until it falls back to zero (then they join it, in order) or a storm begins
(then they are its first strata). The storm's start is the first held bucket that pointed
away from the history.

>>> from rollguard.detectors.policy import default_policy
>>> policy = default_policy()
>>> weather, history = Weather(), {"error": [10_000.0, 50.0, 50.0]}  # 0.5 % errors
>>> weather.close(0, {"error": [100, 1.0, 1.0]}, history, policy)
{}
>>> weather.close(1, {"error": [300, 90.0, 90.0]}, history, policy)   # 30 %: both releases
{'error': 1}
>>> weather.baseline("error", policy.metrics["error"], history)
([300.0, 90.0, 90.0], 'concurrent')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rollguard.detectors.accumulate import Bucket, fold
from rollguard.detectors.candidate import Candidate
from rollguard.detectors.evidence import EveryHypotheses, Hypotheses
from rollguard.detectors.policy import MetricRule, Policy

CAP = 1.0  # the weather's CUSUM is capped at CAP x its bar, so that a storm ends soon after
CONCURRENT, HISTORY = "concurrent", "history"  # which baseline a candidate was compared with


@dataclass
class MetricWeather:
    """One metric of the stable release against its history; plain data."""

    cusum: float = 0.0
    held: list[list[Any]] = field(default_factory=list)  # [bucket, entry, llr], oldest first
    storm: int = -1  # the bucket the storm began in; -1: no storm

    def to_list(self) -> list[Any]:
        return [self.cusum, self.held, self.storm]

    @classmethod
    def from_list(cls, data: list[Any]) -> MetricWeather:
        return cls(data[0], [list(h) for h in data[1]], int(data[2]))


class Weather:
    """The storms of one service's metrics; see the module's docstring."""

    def __init__(self) -> None:
        self.metrics: dict[str, MetricWeather] = {}
        # Metric -> the strata of a storm that ended in the bucket just closed (not stored:
        # used before the next bucket closes, within the same close).
        self.ended: dict[str, list[list[Any]]] = {}

    def close(self, bucket: int, sums: Bucket | None, history: Bucket, policy: Policy,
              hyps: Mapping[str, Hypotheses | None] | None = None) -> dict[str, int]:
        """Weigh the stable release's sums of a closed bucket; fold into ``history`` what
        is no longer held. ``hyps``: the hypotheses of ``history`` as it is now, if made
        already. Returns ``{metric: start bucket}`` of the storms that began."""
        if hyps is None:
            hyps = EveryHypotheses(policy.metrics, history, policy.baseline_margin)
        began: dict[str, int] = {}
        self.ended = {}
        bar = policy.weather_evidence
        longest = policy.max_episode_seconds / policy.bucket_seconds
        decay = policy.bucket_decay
        for name in policy.metrics:
            entry = sums.get(name) if sums else None
            if entry is None:
                continue
            w = self.metrics.get(name)
            if w is None:
                w = self.metrics[name] = MetricWeather()
            hyp = hyps[name]
            llr = hyp.score(entry)[0] if hyp is not None else 0.0
            w.cusum = min(max(w.cusum + llr, 0.0), CAP * bar)
            w.held.append([bucket, entry, llr])
            if w.storm >= 0:
                if w.cusum == 0.0:  # over: the calm buckets that ended it join the history
                    # This bucket still holds the storm's last moments (a shock ends within
                    # a bucket): the candidate's bucket is compared with the stable's.
                    self.ended[name] = w.held
                    calm = len(w.held)
                    while calm and w.held[calm - 1][2] <= 0.0:
                        calm -= 1
                    _join(history, name, w.held[calm:], decay)
                    w.held, w.storm = [], -1
                elif bucket - w.storm >= longest:  # the new normal
                    _join(history, name, w.held, decay)
                    w.held, w.storm, w.cusum = [], -1, 0.0
                continue
            if w.cusum >= bar:
                while w.held and w.held[0][2] <= 0.0:  # it began where the stable moved
                    _join(history, name, w.held[:1], decay)
                    del w.held[0]
                w.storm = began[name] = w.held[0][0]
            elif w.cusum == 0.0 or len(w.held) > longest:
                keep = 0 if w.cusum == 0.0 else int(longest)
                _join(history, name, w.held[:len(w.held) - keep], decay)
                del w.held[:len(w.held) - keep]
        return began

    def clear(self, history: Bucket, policy: Policy) -> None:
        """Forget the storms (no candidate is judged now): the held buckets join the
        history in order, a storm's strata are dropped as when it ends."""
        if not self.metrics:
            return
        decay = policy.bucket_decay
        for name, w in self.metrics.items():
            if w.storm < 0:
                _join(history, name, w.held, decay)
        self.metrics, self.ended = {}, {}

    def storming(self, name: str) -> bool:
        """Whether ``name``'s bucket just closed is compared at the same moments: a storm
        goes on, or it ended in this bucket."""
        w = self.metrics.get(name)
        return (w is not None and w.storm >= 0) or name in self.ended

    def baseline(self, name: str, rule: MetricRule,
                 history: Bucket) -> tuple[list[Any] | None, str]:
        """The reference a candidate's bucket of ``name`` is compared with, and its kind:
        the history, or during a storm the stable's strata since it began pooled newest
        first to ``min_samples`` (None when even all of them hold fewer)."""
        w = self.metrics.get(name)
        held = self.ended.get(name) or (w.held if w is not None and w.storm >= 0 else None)
        if not held:
            return history.get(name), HISTORY
        newest = [e for _, e, _ in reversed(held)]
        return pooled(newest, rule.min_samples), CONCURRENT

    def to_plain(self) -> dict[str, Any]:
        return {name: w.to_list() for name, w in self.metrics.items()}

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> Weather:
        weather = cls()
        weather.metrics = {name: MetricWeather.from_list(w) for name, w in plain.items()}
        return weather


def discount(cand: Candidate, began: dict[str, int]) -> None:
    """At a storm's start, take back what the candidate's tracks of its metrics (overall and
    per cohort) gathered since it began: that was measured against the history."""
    for name, since in began.items():
        for tracks in (cand.tracks, *cand.cohort_tracks.values()):
            track = tracks.get(name)
            if track is not None and not track.done:
                track.discount(since)


def _join(history: Bucket, name: str, held: list[list[Any]], decay: float) -> None:
    for _, entry, _ in held:
        fold(history, {name: entry}, decay)


def pooled(entries: list[list[Any]], min_samples: float) -> list[Any] | None:
    """Bucket entries of one metric (newest first) summed until they hold ``min_samples``
    (all of them when they hold fewer), as a reference entry; None without any.

    >>> pooled([[100, 3.0, 3.0], [150, 4.0, 4.0], [90, 1.0, 1.0]], 200)
    [250.0, 7.0, 7.0]
    >>> pooled([[2, {5: 2}], [1, {6: 1}]], 3)
    [3.0, {5: 2.0, 6: 1.0}, 1.0]
    >>> pooled([[10, 1.0, 1.0], [5, 0.0, 0.0]], 200), pooled([], 200)
    ([15.0, 1.0, 1.0], None)
    """
    if not entries:
        return None
    n = 0.0
    if type(entries[0][1]) is dict:
        hist: dict[int, float] = {}
        for entry in entries:
            n += entry[0]
            for b, c in entry[1].items():
                hist[b] = hist.get(b, 0.0) + c
            if n >= min_samples:
                break
        return [n, dict(sorted(hist.items())), 1.0]
    total = squares = 0.0
    for entry in entries:
        n += entry[0]
        total += entry[1]
        squares += entry[2]
        if n >= min_samples:
            break
    return [n, total, squares]
