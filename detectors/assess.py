"""Assess one closed bucket of a candidate: update each metric's track, emit decisions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors.accumulate import KINDS, Bucket
from detectors.decision import Decision, DecisionAction, Verdict
from detectors.evidence import hypotheses
from detectors.explain import metric_reason, window_evidence
from detectors.policy import CompositeRule, MetricRule, Policy, RuleAction
from detectors.staging import CUT, RESTORE, Stage, judge, staged_rule, watched_metrics
from detectors.track import MetricTrack, excursion, robust_score
from detectors.unjudged import SAMPLES, STOPPED, inconclusive_notice


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

    def to_list(self) -> list[Any]:
        return [self.release, self.first_bucket, self.last_bucket, self.finished, self.fired,
                {name: t.to_list() for name, t in self.tracks.items()}, self.episode,
                self.stage.to_list() if self.stage else None, self.rounds,
                {c: {name: t.to_list() for name, t in tracks.items()}
                 for c, tracks in self.cohort_tracks.items()},
                self.noticed]

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
        return cls(data[0], data[1], data[2], data[3], list(data[4]), tracks, episode,
                   stage, rounds, cohorts, noticed)


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

    >>> from detectors.policy import default_policy
    >>> round(cohort_threshold(default_policy()), 3)
    7.079
    """
    return policy.evidence_threshold + math.log(policy.max_cohorts)


def _decision(ctx: Context, cand: Candidate, action: RuleAction, verdict: Verdict,
              components: tuple[str, ...], reason: str, evidence: dict[str, Any]) -> Decision:
    if action == RuleAction.STAGED and verdict == Verdict.SUSTAINED:
        return _first_cut(ctx, cand, components, reason, evidence)
    dry_run = action == RuleAction.DRY_RUN
    approve = action == RuleAction.APPROVE
    rollback = action != RuleAction.ALERT and verdict == Verdict.SUSTAINED
    if rollback and not dry_run:
        cand.finished = True
    acted = DecisionAction.ROLLBACK if rollback else DecisionAction.ALERT
    return Decision(ctx.ts, ctx.service, cand.release, acted, verdict, ctx.stable,
                    list(components), reason, evidence, requires_approval=approve and rollback,
                    dry_run=dry_run and rollback)


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
    staged = watched_metrics(policy, cand.stage)
    for name, rule in policy.metrics.items():
        if cand.finished:
            break
        track = cand.tracks.get(name)
        if track is None:
            track = cand.tracks[name] = MetricTrack()
        entry = cand_bucket.get(name) if cand_bucket else None
        if track.done:
            if name in staged and entry is not None:
                _carry_on(ctx, rule, track, entry, max_buckets)
            continue
        if entry is None:
            if (track.samples and not track.stale and cand.last_bucket == ctx.bucket
                    and ctx.bucket - track.last_bucket >= stale_buckets):
                track.stale = True  # said in the inconclusive notice below
        else:
            track.stale = False
            hyp = hypotheses(rule, KINDS[rule.statistic], ctx.stable_ref.get(name),
                             policy.baseline_margin)
            if hyp is None:
                track.samples += entry[0]
                track.last_bucket = ctx.bucket
                continue
            llr, s = hyp.score(entry)
            episode = track.update(ctx.bucket, llr, entry[0], s, threshold=h,
                                   max_buckets=max_buckets)
            if episode is not None:
                track.close_episode()
                alert = _transient(ctx, cand, rule, episode, hyp)
                if alert is not None:
                    out.append(alert)
            if track.samples >= rule.min_samples and track.cusum >= low:
                track.score, start = robust_score(track.run, blip_buckets)
                if track.score >= h and track.recent_llr() >= 0.0:
                    out.append(_sustained(ctx, cand, rule, track, hyp, start))
                    continue
            elif track.cusum < low:
                track.score = 0.0
    if not cand.finished:
        notice = inconclusive_notice(ctx, cand)
        if notice is not None:
            out.append(notice)
    for composite in policy.composites:
        if not cand.finished and composite.name not in cand.fired:
            decision = _composite(ctx, cand, composite)
            if decision is not None:
                out.append(decision)
    return out


def _carry_on(ctx: Context, rule: MetricRule, track: MetricTrack, entry: list[Any],
              max_buckets: int) -> None:
    # A decided metric of a staged rule in progress: its evidence goes on being gathered.
    hyp = hypotheses(rule, KINDS[rule.statistic], ctx.stable_ref.get(rule.name),
                     ctx.policy.baseline_margin)
    if hyp is not None:
        llr, s = hyp.score(entry)
        if track.update(ctx.bucket, llr, entry[0], s, threshold=ctx.policy.evidence_threshold,
                        max_buckets=max_buckets) is not None:
            track.close_episode()


def _first_cut(ctx: Context, cand: Candidate, components: tuple[str, ...], reason: str,
               evidence: dict[str, Any]) -> Decision:
    if cand.stage is not None:  # another staged rule is cutting the candidate already
        return Decision(ctx.ts, ctx.service, cand.release, DecisionAction.ALERT,
                        Verdict.SUSTAINED, ctx.stable, list(components),
                        f"{reason} Staged rollback by {cand.stage.rule} in progress.", evidence)
    cand.stage = Stage(evidence["metric"], cand.rounds, 0, ctx.bucket, share=ctx.share,
                       cohort=evidence.get("cohort"))
    return _step(ctx, cand, components, reason, evidence)


def _step(ctx: Context, cand: Candidate, components: tuple[str, ...], reason: str,
          evidence: dict[str, Any]) -> Decision:
    stage = cand.stage
    assert stage is not None
    steps = staged_rule(ctx.policy, stage.rule).staging.steps
    percent = steps[stage.step]
    evidence = {**evidence, "staged": {"rule": stage.rule, "round": stage.round,
                                       "step": stage.step + 1, "steps": list(steps),
                                       "percent": percent}}
    where = f"step {stage.step + 1} of {len(steps)}"
    if percent == 0:
        cand.finished = True
        action, what = DecisionAction.ROLLBACK, f"{cand.release} rolled back ({where})"
    else:
        action, what = DecisionAction.STAGE, (f"{cand.release} cut to {percent:g}% of the "
                                              f"traffic ({where}) and judged again there")
    return Decision(ctx.ts, ctx.service, cand.release, action, Verdict.SUSTAINED, ctx.stable,
                    list(components), f"{reason} Staged rollback: {what}.", evidence)


def advance_stage(ctx: Context, cand: Candidate) -> list[Decision]:
    """The staged rollback in progress after this bucket: the next cut, a restore, or
    nothing (after the bucket's metrics and cohorts were assessed)."""
    stage = cand.stage
    if stage is None or cand.finished:
        return []
    tracks, h = cand.tracks, ctx.policy.evidence_threshold
    if stage.cohort is not None:
        tracks = cand.cohort_tracks.setdefault(stage.cohort, {})
        h = cohort_threshold(ctx.policy)
    move = judge(ctx.policy, stage, tracks, ctx.bucket, h)
    rule = staged_rule(ctx.policy, stage.rule)
    watched = watched_metrics(ctx.policy, stage)
    seconds = (ctx.bucket - stage.since) * ctx.policy.bucket_seconds
    evidence: dict[str, Any] = {
        "metric": stage.rule, "seconds_at_step": seconds,
        "cusum": {m: round(tracks[m].cusum, 3) for m in watched if m in tracks},
        "threshold": h, "tests": ["cusum-llr"]}
    if stage.cohort is not None:
        evidence["cohort"] = stage.cohort
    before = rule.staging.steps[stage.step]
    if move == CUT:
        stage.step, stage.since = stage.step + 1, ctx.bucket
        reason = (f"{stage.rule} of {cand.release} is still worse than on {ctx.stable} "
                  f"{seconds:g} s after the cut to {before:g}%.")
        return [_step(ctx, cand, rule.components, reason, evidence)]
    if move != RESTORE:
        return []
    cand.stage, cand.rounds = None, cand.rounds + 1
    for name in watched:  # judged afresh from here: a new regression is staged again
        old = tracks.get(name)
        if old is not None:
            tracks[name] = MetricTrack(samples=old.samples, last_bucket=old.last_bucket)
    cand.fired = [f for f in cand.fired if f != stage.rule]
    share = "its share before" if stage.share is None else f"{stage.share:g}%"
    calm = (ctx.bucket + 1 - stage.calm_since) * ctx.policy.bucket_seconds
    evidence.update(calm_seconds=calm, staged={"rule": stage.rule, "round": stage.round,
                                                "step": stage.step + 1, "percent": before,
                                                "restore_percent": stage.share})
    reason = (f"{cand.release} recovered at {before:g}% of the traffic: the evidence of "
              f"{stage.rule} stayed below the threshold for {calm:g} s, so the regression came "
              f"with the traffic, not the release; {cand.release} gets {share} back.")
    return [Decision(ctx.ts, ctx.service, cand.release, DecisionAction.RESTORE,
                     Verdict.TRANSIENT, ctx.stable, list(rule.components), reason, evidence)]


def _transient(ctx: Context, cand: Candidate, rule: MetricRule, run: list[list[float]],
               hyp: Any) -> Decision | None:
    # A recovered episode is a transient only when its strongest stretch (the excursion)
    # meets the policy's standard: enough evidence, over enough samples that no single
    # outlier of a skewed metric carries it. Positive evidence already places the stretch's
    # value nearer "2x the tolerance" than "half of it", i.e. beyond the tolerance.
    policy = ctx.policy
    llr, samples, first, last = excursion(run)
    if llr < policy.transient_evidence or samples < policy.transient_min_samples:
        return None
    evidence = window_evidence(rule, hyp, run[:last + 1], first, policy.bucket_seconds,
                               ctx.candidate_ref.get(rule.name))
    evidence.update(llr=round(llr, 3), threshold=policy.transient_evidence,
                    min_samples=policy.transient_min_samples, tests=["excursion-llr"],
                    detectors=["adwin-recovery"])
    reason = metric_reason(rule, evidence, cand.release, ctx.stable, Verdict.TRANSIENT)
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
