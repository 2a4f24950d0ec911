"""One metric of one candidate over time: CUSUM, the bad stretch, and the blip-robust score.

Verdict logic, in plain words:

* Every closed bucket adds its log-likelihood ratio (see :mod:`detectors.evidence`) to a
  CUSUM; the stretch since the CUSUM last stood at zero is the *run*.
* The run is **sustained** when, after leaving out its worst ``blip`` (any stretch of at most
  ``blip_buckets`` buckets), the evidence that is left still reaches the threshold, and the
  last minute does not point back to the baseline. A blip of 2 minutes, however large, is
  always left out, so it can never be the evidence for a rollback. The score is never larger
  than the plain CUSUM, so the CUSUM's false-alarm bound holds for it.
* An **episode** opens when the CUSUM reaches the threshold; it closes when the CUSUM falls
  back to a quarter of it, or when River's ADWIN finds a change in the run's evidence and the
  evidence since then favours the baseline (a faster "it recovered"). It is reported as
  **transient** only when its :func:`excursion` meets the policy's own standard for one
  (``transient_evidence`` over at least ``transient_min_samples``; see :mod:`detectors.assess`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CAP = 2.0  # the CUSUM is capped at CAP x threshold so that a huge blip is forgotten in minutes
RECENT_BUCKETS = 6  # "the last minute" at 10 s buckets


@dataclass
class MetricTrack:
    """Bounded state of one metric of one candidate; plain data, serialisable as a list."""

    cusum: float = 0.0
    run: list[list[float]] = field(default_factory=list)  # [bucket, llr, n, s] per bucket
    samples: int = 0
    last_bucket: int = -1
    episode_start: int = -1  # bucket where the CUSUM first reached the threshold, -1 if none
    peak: float = 0.0
    score: float = 0.0  # the last blip-robust score computed
    done: bool = False  # a sustained verdict was given: nothing more to say for this metric
    stale: bool = False  # the metric stopped arriving (see detectors.unjudged)
    thin: bool = False  # state version <= 2: a "too little data" alert was given
    moved: int = -1  # the run (by its first bucket) told to the fleet as a move

    def update(self, bucket: int, llr: float, n: int, s: float, *, threshold: float,
               max_buckets: int) -> list[list[float]] | None:
        """Add one bucket's evidence; when an open episode has just recovered, its run (the
        buckets since the CUSUM last stood at zero), else None."""
        self.samples += n
        self.last_bucket = bucket
        self.cusum = min(max(self.cusum + llr, 0.0), CAP * threshold)
        if self.cusum == 0.0 and self.episode_start < 0:
            self.run.clear()
        else:
            self.run.append([bucket, llr, n, s])
            while self.run and bucket - self.run[0][0] >= max_buckets:
                del self.run[0]  # bounded: only the last max_episode_seconds are looked at
        # (An open episode keeps its run until it closes just below, even at a CUSUM of 0:
        # the run is then the excursion's evidence.)
        if self.episode_start < 0:
            if self.cusum >= threshold:
                self.episode_start, self.peak = bucket, self.cusum
            return None
        self.peak = max(self.peak, self.cusum)
        if self.cusum <= threshold / 4 or recovered(self.run):
            self.cusum = 0.0
            run, self.run = self.run, []
            return run
        return None

    def discount(self, since: int) -> None:
        """Take back the evidence against the baseline of the buckets from ``since`` on
        (they were compared with a baseline that a shock of every release made wrong).

        >>> t = MetricTrack(cusum=5.0, run=[[3, 2.0, 10, 1], [4, 3.0, 10, 2]])
        >>> t.discount(4); t.cusum, t.run[1][1]
        (2.0, 0.0)
        """
        taken = 0.0
        for entry in self.run:
            if entry[0] >= since and entry[1] > 0.0:
                taken += entry[1]
                entry[1] = 0.0
        self.cusum = max(self.cusum - taken, 0.0)

    def close_episode(self) -> None:
        self.episode_start, self.peak = -1, 0.0

    def recent_llr(self) -> float:
        """Evidence of the last minute of the run (negative: it points back to the baseline)."""
        if not self.run:
            return 0.0
        end = self.run[-1][0]
        return sum(r[1] for r in self.run if end - r[0] < RECENT_BUCKETS)

    def to_list(self) -> list[Any]:
        return [self.cusum, self.run, self.samples, self.last_bucket, self.episode_start,
                self.peak, self.score, self.done, self.stale, self.thin, self.moved]

    @classmethod
    def from_list(cls, data: list[Any]) -> MetricTrack:
        run = [[int(r[0]), r[1], int(r[2]), r[3]] for r in data[1]]
        return cls(data[0], run, *data[2:])


def robust_score(run: list[list[float]], blip_buckets: int) -> tuple[float, int]:
    """Best evidence of a suffix of the run once its worst blip is left out.

    Returns ``(score, start)``: the score and the index in ``run`` where that suffix starts.
    O(len(run) x blip_buckets), computed only while the CUSUM is high.

    >>> steady = [[b, 1.0, 20, 2] for b in range(30)]
    >>> robust_score(steady, blip_buckets=14)
    (16.0, 0)
    >>> blip = [[b, 50.0 if b < 12 else -0.2, 20, 2] for b in range(30)]
    >>> robust_score(blip, blip_buckets=14)[0] <= 0.0
    True
    """
    best, best_start = 0.0, len(run)
    suffix = 0.0
    worst_blip = 0.0
    for start in range(len(run) - 1, -1, -1):
        suffix += run[start][1]
        first = run[start][0]
        stretch = 0.0
        for entry in run[start:]:
            if entry[0] - first >= blip_buckets:
                break
            stretch += entry[1]
            if stretch > worst_blip:
                worst_blip = stretch
        if suffix - worst_blip > best:
            best, best_start = suffix - worst_blip, start
    return best, best_start


def excursion(run: list[list[float]]) -> tuple[float, int, int, int]:
    """The stretch of ``run`` with the most evidence: ``(llr, samples, first, last)``, indices
    into ``run`` (inclusive); ``(0.0, 0, 0, -1)`` when no stretch has positive evidence.

    >>> excursion([[0, -1.0, 5, 0], [1, 3.0, 5, 2], [2, 2.0, 5, 2], [3, -4.0, 5, 0]])
    (5.0, 10, 1, 2)
    """
    best = (0.0, 0, 0, -1)
    total, samples, first = 0.0, 0, 0
    for i, entry in enumerate(run):
        if total <= 0.0:
            total, samples, first = 0.0, 0, i
        total += entry[1]
        samples += int(entry[2])
        if total > best[0]:
            best = (total, samples, first, i)
    return best


def recovered(run: list[list[float]]) -> bool:
    """River ADWIN over the run's evidence found a change, and the evidence since the last
    change favours the baseline. ADWIN is rebuilt from the bounded run on every call, so
    nothing of River is ever stored (its objects do not survive version upgrades).

    >>> recovered([[b, 3.0 if b < 40 else -0.5, 20, 2] for b in range(80)])
    True
    >>> recovered([[b, 0.5, 20, 2] for b in range(80)])
    False
    """
    if len(run) < 2 * RECENT_BUCKETS:
        return False
    try:
        # River's ADWIN is a thin wrapper of this Rust class; importing it alone takes
        # milliseconds, where `river.drift` imports all of River's detectors and SciPy with
        # them (about 1.5 s, most of a replay's start). Same parameters, same updates.
        from river._river_rust.drift import AdaptiveWindowing
    except ImportError:  # pragma: no cover - a River whose Rust module moved
        return recovered_by_river_adwin(run)
    window = AdaptiveWindowing(**ADWIN_ARGS)
    changed = drift = False
    for entry in run:
        if drift:  # as river.drift.ADWIN.update does: after a change, a new window
            window = AdaptiveWindowing(**ADWIN_ARGS)
        drift = window.update(entry[1])
        changed = changed or drift
    width = window.get_width()
    return changed and width > 0 and window.get_total() / width < 0.0


ADWIN_ARGS: dict[str, Any] = {"delta": 0.002, "clock": 1, "max_buckets": 5,
                              "min_window_length": RECENT_BUCKETS, "grace_period": 6}


def recovered_by_river_adwin(run: list[list[float]]) -> bool:
    """:func:`recovered` through River's public ADWIN class (the reference it is tested against)."""
    from river.drift import ADWIN

    detector = ADWIN(**ADWIN_ARGS)
    changed = False
    for entry in run:
        detector.update(entry[1])
        changed = changed or detector.drift_detected
    return changed and detector.estimation < 0.0
