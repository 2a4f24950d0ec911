"""Staged rollback: which step of a ``staged`` rule is due, given the time and the verdicts.

A sustained finding of a rule whose action is ``staged`` cuts the candidate's share to the
rule's first step (:class:`detectors.policy.Staging`) instead of rolling it back. The rule's
metrics keep being judged at each step, their evidence carried over (the CUSUM and its run
go on), bucket after bucket:

* **still worse**: the evidence is at the threshold and grew since the last cut; after
  ``step_seconds`` at a step the next step is due. The last step is 0 %: a full rollback.
* **calm**: the evidence fell below the threshold. Calm for ``recovery_seconds`` in a row,
  the candidate gets its share back: the regression came with the traffic, not the release.
* anything in between (the evidence still high but falling) waits.

Pure: the tracks and the bucket in, a move out; the decisions are made in
:mod:`detectors.stages`, the commands in ``actions/staged.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rollguard.detectors.policy import CompositeRule, MetricRule, Policy, Staging
from rollguard.detectors.track import MetricTrack

CUT = "cut"
RESTORE = "restore"


@dataclass
class Stage:
    """A staged rollback in progress: ``step`` indexes the last cut made (in bucket
    ``since``); ``share`` is the candidate's share before the first cut (None: not known,
    e.g. in a replay without pointers). ``round`` counts the staged rollbacks of this
    candidate before this one (a restored candidate may be staged again)."""

    rule: str
    round: int
    step: int
    since: int
    calm_since: int = -1  # the first bucket of the current calm stretch; -1: not calm
    share: float | None = None
    cohort: str | None = None  # a cohort's finding: its tracks are judged (detectors.cohorts)

    def to_list(self) -> list[Any]:
        return [self.rule, self.round, self.step, self.since, self.calm_since, self.share,
                self.cohort]

    @classmethod
    def from_list(cls, data: list[Any]) -> Stage:
        return cls(str(data[0]), int(data[1]), int(data[2]), int(data[3]), int(data[4]),
                   data[5], data[6])


def staged_rule(policy: Policy, name: str) -> MetricRule | CompositeRule:
    """The metric or composite rule called ``name``."""
    rule = policy.metrics.get(name)
    if rule is not None:
        return rule
    return next(c for c in policy.composites if c.name == name)


def watched_metrics(policy: Policy, stage: Stage | None) -> tuple[str, ...]:
    """The metrics whose tracks must go on while ``stage`` is in progress."""
    if stage is None:
        return ()
    rule = staged_rule(policy, stage.rule)
    return rule.metrics if isinstance(rule, CompositeRule) else (rule.name,)


def llr_since(track: MetricTrack, bucket: int) -> float:
    """Evidence the track gathered after ``bucket`` (0 when its run has been cleared)."""
    return sum(entry[1] for entry in track.run if entry[0] > bucket)


def verdicts(tracks: Sequence[MetricTrack], since: int, bar: float,
             at_least: int) -> tuple[bool, bool]:
    """``(worse, calm)`` of a staged rule's tracks: at least ``at_least`` of them at ``bar``
    and still growing since bucket ``since``; fewer than ``at_least`` at ``bar`` at all.

    >>> bad = MetricTrack(cusum=9.0, run=[[4, 1.0, 20, 2], [5, 0.5, 20, 2]])
    >>> verdicts([bad], since=4, bar=5.0, at_least=1), verdicts([MetricTrack()], 4, 5.0, 1)
    ((True, False), (False, True))
    """
    worse = sum(1 for t in tracks if t.cusum >= bar and llr_since(t, since) > 0.0)
    high = sum(1 for t in tracks if t.cusum >= bar)
    return worse >= at_least, high < at_least


def next_move(stage: Stage, staging: Staging, bucket: int, worse: bool, calm: bool,
              bucket_seconds: float) -> str | None:
    """:data:`CUT` (the next step), :data:`RESTORE` or None, after bucket ``bucket``.

    >>> s, rule = Stage("error", 0, 0, since=10), Staging((10.0, 0.0), 60.0, 600.0)
    >>> next_move(s, rule, 13, True, False, 10.0), next_move(s, rule, 16, True, False, 10.0)
    (None, 'cut')
    >>> [next_move(s, rule, b, False, True, 10.0) for b in (20, 78, 79)]
    [None, None, 'restore']
    """
    if calm:
        if stage.calm_since < 0:
            stage.calm_since = bucket
        if (bucket + 1 - stage.calm_since) * bucket_seconds >= staging.recovery_seconds:
            return RESTORE
        return None
    stage.calm_since = -1
    if worse and (bucket - stage.since) * bucket_seconds >= staging.step_seconds:
        return CUT
    return None


def judge(policy: Policy, stage: Stage, tracks: dict[str, MetricTrack], bucket: int,
          h: float) -> str | None:
    """The move of ``stage`` after ``bucket``, from its rule's tracks (threshold ``h``)."""
    rule = staged_rule(policy, stage.rule)
    if isinstance(rule, CompositeRule):
        members = [tracks.get(m) or MetricTrack() for m in rule.metrics]
        worse, calm = verdicts(members, stage.since, rule.evidence * h, rule.at_least)
    else:
        worse, calm = verdicts([tracks.get(rule.name) or MetricTrack()], stage.since, h, 1)
    return next_move(stage, rule.staging, bucket, worse, calm, policy.bucket_seconds)
