"""Assess one closed bucket of a candidate: update each metric's track, emit decisions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors.accumulate import KINDS, Bucket
from detectors.decision import Decision, DecisionAction, Verdict
from detectors.evidence import hypotheses
from detectors.explain import describe, metric_reason, window_evidence
from detectors.policy import CompositeRule, MetricRule, Policy, RuleAction
from detectors.track import MetricTrack, robust_score


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

    def to_list(self) -> list[Any]:
        return [self.release, self.first_bucket, self.last_bucket, self.finished, self.fired,
                {name: t.to_list() for name, t in self.tracks.items()}, self.episode]

    @classmethod
    def from_list(cls, data: list[Any]) -> Candidate:
        tracks = {name: MetricTrack.from_list(t) for name, t in data[5].items()}
        episode = data[6] if len(data) > 6 else None
        return cls(data[0], data[1], data[2], data[3], list(data[4]), tracks, episode)


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

    @property
    def buckets(self) -> tuple[int, int, int]:
        """(blip, max episode, stale) lengths in buckets."""
        p = self.policy
        # A blip of L seconds touches at most ceil(L / B) + 1 buckets; one more absorbs
        # events that arrive a few seconds out of order and land in the next bucket.
        blip = math.ceil(p.blip_seconds / p.bucket_seconds) + 2
        return (blip, math.ceil(p.max_episode_seconds / p.bucket_seconds),
                math.ceil(p.stale_after_seconds / p.bucket_seconds))


def _decision(ctx: Context, cand: Candidate, action: RuleAction, verdict: Verdict,
              components: tuple[str, ...], reason: str, evidence: dict[str, Any]) -> Decision:
    dry_run = action == RuleAction.DRY_RUN
    approve = action == RuleAction.APPROVE
    rollback = action != RuleAction.ALERT and verdict == Verdict.SUSTAINED
    if rollback and not dry_run:
        cand.finished = True
    acted = DecisionAction.ROLLBACK if rollback else DecisionAction.ALERT
    return Decision(ctx.ts, ctx.service, cand.release, acted, verdict, ctx.stable,
                    list(components), reason, evidence, requires_approval=approve and rollback,
                    dry_run=dry_run and rollback)


def _inconclusive(ctx: Context, cand: Candidate, rule: MetricRule, why: str,
                  track: MetricTrack) -> Decision:
    evidence = {"metric": rule.name, "statistic": describe(rule), "candidate_samples":
                track.samples, "min_samples": rule.min_samples, "why": why}
    reason = f"{describe(rule)} of {cand.release} cannot be judged: {why}."
    return _decision(ctx, cand, RuleAction.ALERT, Verdict.INCONCLUSIVE, rule.components, reason,
                     evidence)


def assess_bucket(ctx: Context, cand: Candidate, cand_bucket: Bucket | None) -> list[Decision]:
    """Update every metric of ``cand`` with its sums in the closed bucket; return decisions."""
    policy = ctx.policy
    h = policy.evidence_threshold
    low = h * min([1.0, *(c.evidence for c in policy.composites)])
    blip_buckets, max_buckets, stale_buckets = ctx.buckets
    out: list[Decision] = []
    if cand.first_bucket < 0:
        # Named before any event arrived (the worker reads roles from the pointer first):
        # the candidate appears with the first bucket that closes, not at bucket -1.
        cand.first_bucket = ctx.bucket
    if cand_bucket:
        cand.last_bucket = ctx.bucket
    for name, rule in policy.metrics.items():
        if cand.finished:
            break
        track = cand.tracks.get(name)
        if track is None:
            track = cand.tracks[name] = MetricTrack()
        if track.done:
            continue
        entry = cand_bucket.get(name) if cand_bucket else None
        if entry is None:
            if (track.samples and not track.stale and cand.last_bucket == ctx.bucket
                    and ctx.bucket - track.last_bucket >= stale_buckets):
                track.stale = True
                out.append(_inconclusive(ctx, cand, rule, "the metric stopped arriving", track))
        else:
            track.stale = False
            hyp = hypotheses(rule, KINDS[rule.statistic], ctx.stable_ref.get(name),
                             policy.baseline_margin)
            if hyp is None:
                track.samples += entry[0]
                track.last_bucket = ctx.bucket
                if track.samples >= rule.min_samples and not track.thin:
                    track.thin = True
                    out.append(_inconclusive(ctx, cand, rule, f"the baseline {ctx.stable} has "
                                             "too few samples", track))
                continue
            llr, s = hyp.score(entry)
            if track.update(ctx.bucket, llr, entry[0], s, threshold=h, max_buckets=max_buckets):
                out.append(_transient(ctx, cand, rule, track, hyp))
                track.close_episode()
            if track.samples >= rule.min_samples and track.cusum >= low:
                track.score, start = robust_score(track.run, blip_buckets)
                if track.score >= h and track.recent_llr() >= 0.0:
                    out.append(_sustained(ctx, cand, rule, track, hyp, start))
                    continue
            elif track.cusum < low:
                track.score = 0.0
        waited = (ctx.bucket - cand.first_bucket) * policy.bucket_seconds
        if (not track.thin and track.samples < rule.min_samples and name in ctx.stable_ref
                and waited >= policy.inconclusive_after_seconds):
            track.thin = True
            out.append(_inconclusive(ctx, cand, rule, f"only {track.samples} samples after "
                                     f"{waited / 60:.0f} min", track))
    for composite in policy.composites:
        if not cand.finished and composite.name not in cand.fired:
            decision = _composite(ctx, cand, composite)
            if decision is not None:
                out.append(decision)
    return out


def _transient(ctx: Context, cand: Candidate, rule: MetricRule, track: MetricTrack,
               hyp: Any) -> Decision:
    evidence = {"metric": rule.name, "statistic": describe(rule), "baseline":
                round(hyp.baseline, 6), "since": track.episode_start * ctx.policy.bucket_seconds,
                "duration_s": (ctx.bucket + 1 - track.episode_start) * ctx.policy.bucket_seconds,
                "peak_llr": round(track.peak, 3), "threshold": ctx.policy.evidence_threshold,
                "tests": ["cusum-llr"], "detectors": ["adwin-recovery"]}
    reason = (f"{describe(rule)} of {cand.release} was worse than on {ctx.stable} for "
              f"{evidence['duration_s'] / 60:.1f} min, then recovered: a transient blip.")
    return _decision(ctx, cand, RuleAction.ALERT, Verdict.TRANSIENT, rule.components, reason,
                     evidence)


def _sustained(ctx: Context, cand: Candidate, rule: MetricRule, track: MetricTrack, hyp: Any,
               start: int) -> Decision:
    track.done = True
    cand.fired.append(rule.name)
    evidence = window_evidence(rule, hyp, track.run, start, ctx.policy.bucket_seconds,
                               ctx.candidate_ref.get(rule.name))
    evidence.update(llr=round(track.score, 3), threshold=ctx.policy.evidence_threshold,
                    tests=["cusum-llr", "blip-robust-llr"], detectors=[])
    reason = metric_reason(rule, evidence, cand.release, ctx.stable, Verdict.SUSTAINED)
    action = rule.action if rule.critical else RuleAction.ALERT
    return _decision(ctx, cand, action, Verdict.SUSTAINED, rule.components, reason, evidence)


def _composite(ctx: Context, cand: Candidate, rule: CompositeRule) -> Decision | None:
    bar = rule.evidence * ctx.policy.evidence_threshold
    strong = [m for m in rule.metrics if m in cand.tracks and
              (cand.tracks[m].score >= bar or m in cand.fired)]
    if len(strong) < rule.at_least:
        return None
    cand.fired.append(rule.name)
    evidence = {"metric": rule.name, "composite": list(rule.metrics), "at_least": rule.at_least,
                "llr": {m: round(cand.tracks[m].score, 3) for m in strong},
                "threshold": round(bar, 3), "tests": ["blip-robust-llr"]}
    reason = (f"{len(strong)} of {len(rule.metrics)} signals of '{rule.name}' "
              f"({', '.join(strong)}) are worse on {cand.release} than on {ctx.stable} at once.")
    components = rule.components
    return _decision(ctx, cand, rule.action, Verdict.SUSTAINED, components, reason, evidence)
