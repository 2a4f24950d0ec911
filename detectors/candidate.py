"""What is known about a candidate release, and the closed bucket it is judged in."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rollguard.detectors.evidence import Hypotheses
from rollguard.detectors.policy import Policy
from rollguard.detectors.staging import Stage
from rollguard.detectors.track import MetricTrack
from rollguard.detectors.unjudged import SAMPLES, STOPPED


@dataclass
class Candidate:
    """What is known about the candidate release of one service."""

    release: str
    first_bucket: int  # the first bucket it was known in; -1: named before any event
    last_bucket: int = -1
    finished: bool = False  # a rollback was decided: no second one, no more decisions
    fired: list[str] = field(default_factory=list)  # metrics/composites already decided
    tracks: dict[str, MetricTrack] = field(default_factory=dict)
    # Which promotion of the release this is (the pointer's ``watched_since`` epoch; None
    # when roles are inferred): a release promoted again after a rollback is judged afresh.
    episode: int | None = None
    stage: Stage | None = None  # a staged rollback in progress (detectors.staging)
    rounds: int = 0  # staged rollbacks restored so far
    # cohort -> metric -> track: the per-cohort tests (detectors.cohorts)
    cohort_tracks: dict[str, dict[str, MetricTrack]] = field(default_factory=dict)
    # Metric -> why it could not be judged, as the last inconclusive notice said.
    noticed: dict[str, str] = field(default_factory=dict)
    # Sustained rollbacks waiting for the fleet's word (detectors.hold):
    # [due event time, metric, start of its move, the decision as a dict]
    waiting: list[list[Any]] = field(default_factory=list)

    def to_list(self) -> list[Any]:
        return [self.release, self.first_bucket, self.last_bucket, self.finished, self.fired,
                {name: t.to_list() for name, t in self.tracks.items()}, self.episode,
                self.stage.to_list() if self.stage else None, self.rounds,
                {c: {name: t.to_list() for name, t in tracks.items()}
                 for c, tracks in self.cohort_tracks.items()},
                self.noticed, self.waiting]

    @classmethod
    def from_list(cls, data: list[Any]) -> Candidate:
        tracks = {name: MetricTrack.from_list(t) for name, t in data[5].items()}
        episode = data[6] if len(data) > 6 else None
        stage = Stage.from_list(data[7]) if len(data) > 7 and data[7] else None
        rounds = data[8] if len(data) > 8 else 0
        cohorts = {c: {name: MetricTrack.from_list(t) for name, t in by.items()}
                   for c, by in (data[9] if len(data) > 9 else {}).items()}
        if len(data) > 10:
            noticed = dict(data[10])
        else:  # state version <= 2 flagged per metric the alerts it had given
            noticed = {name: STOPPED if t.stale else SAMPLES for name, t in tracks.items()
                       if t.stale or t.thin}
        waiting = list(data[11]) if len(data) > 11 else []
        return cls(data[0], data[1], data[2], data[3], list(data[4]), tracks, episode,
                   stage, rounds, cohorts, noticed, waiting)


@dataclass(frozen=True)
class Context:
    """Everything about one bucket that is the same for all metrics."""

    service: str
    policy: Policy
    stable: str
    bucket: int
    ts: float
    stable_ref: Mapping[str, list[Any]]
    candidate_ref: Mapping[str, list[Any]]
    share: float | None = None  # the candidate's share of traffic (None: not known)
    # Metrics compared with the stable release at the same moments (a storm: see
    # detectors.weather); the others with its history.
    concurrent: frozenset[str] = frozenset()
    # The hypotheses of the stable's history as the bucket closed, when stable_ref is that
    # history for the metrics not in ``concurrent`` (None: measure builds its own).
    history_hyps: Mapping[str, Hypotheses | None] | None = None

    def baseline_from(self, name: str) -> str:
        """Which baseline metric ``name`` was compared with: "concurrent" or "history"."""
        return "concurrent" if name in self.concurrent else "history"

    @property
    def buckets(self) -> tuple[int, int, int]:
        """(blip, max episode, stale) lengths in buckets."""
        p = self.policy
        # A blip of L seconds touches at most ceil(L / B) + 1 buckets; one more absorbs
        # events that arrive a few seconds out of order and land in the next bucket.
        blip = math.ceil(p.blip_seconds / p.bucket_seconds) + 2
        return (blip, math.ceil(p.max_episode_seconds / p.bucket_seconds),
                math.ceil(p.stale_after_seconds / p.bucket_seconds))


def cohort_threshold(policy: Policy) -> float:
    """The evidence a cohort's regression needs: the threshold plus ln(max_cohorts), a
    Bonferroni correction of the CUSUM's exp(-threshold) false-alarm bound for as many
    cohort tests per metric as a service may have.

    >>> from rollguard.detectors.policy import default_policy
    >>> round(cohort_threshold(default_policy()), 3)
    7.079
    """
    return policy.evidence_threshold + math.log(policy.max_cohorts)
