"""Assess one closed bucket of a candidate: measure, update each metric's track, decide."""

from __future__ import annotations

from typing import Any

from rollguard.detectors.accumulate import Bucket
from rollguard.detectors.candidate import Candidate, Context
from rollguard.detectors.decide import Finding, sustained, transient
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.explain import metric_reason, window_evidence
from rollguard.detectors.measure import measure
from rollguard.detectors.policy import CompositeRule, RuleAction
from rollguard.detectors.stages import carry_on, first_cut
from rollguard.detectors.staging import watched_metrics
from rollguard.detectors.track import MetricTrack
from rollguard.detectors.unjudged import inconclusive_notice


def _decision(ctx: Context, cand: Candidate, action: RuleAction, verdict: Verdict,
              components: tuple[str, ...], reason: str, evidence: dict[str, Any]) -> Decision:
    if action == RuleAction.STAGED and verdict == Verdict.SUSTAINED:
        return first_cut(ctx, cand, components, reason, evidence)
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
    """Measure the candidate's closed bucket, fold the readings into its tracks, decide.

    The measuring (:func:`detectors.measure.measure`) and the deciding
    (:mod:`detectors.decide`) are pure; this is where the candidate's state changes.
    """
    policy = ctx.policy
    h = policy.evidence_threshold
    low = h * min([1.0, *(c.evidence for c in policy.composites)])
    _, max_buckets, stale_buckets = ctx.buckets
    if cand.first_bucket < 0:
        # Named before any event arrived (the worker reads roles from the pointer first):
        # the candidate appears with the first bucket that closes, not at bucket -1.
        cand.first_bucket = ctx.bucket
    if cand_bucket:
        cand.last_bucket = ctx.bucket
    readings = measure(ctx, cand_bucket)
    staged = watched_metrics(policy, cand.stage)
    out: list[Decision] = []
    for name, rule in policy.metrics.items():
        if cand.finished:
            break
        track = cand.tracks.get(name)
        if track is None:
            track = cand.tracks[name] = MetricTrack()
        reading = readings.get(name)
        if track.done:
            if name in staged and reading is not None:
                carry_on(ctx, track, reading, max_buckets)
            continue
        if reading is None:
            if (track.samples and not track.stale and cand.last_bucket == ctx.bucket
                    and ctx.bucket - track.last_bucket >= stale_buckets):
                track.stale = True  # said in the inconclusive notice below
            continue
        track.stale = False
        hyp = reading.hyp
        if hyp is None:
            track.samples += reading.samples
            track.last_bucket = ctx.bucket
            continue
        episode = track.update(ctx.bucket, reading.llr, reading.samples, reading.s,
                               threshold=h, max_buckets=max_buckets)
        if episode is not None:
            track.close_episode()
            found = transient(ctx, rule, episode, hyp)
            if found is not None:
                out.append(_transient(ctx, cand, found))
        if track.samples >= rule.min_samples and track.cusum >= low:
            track.score, found = sustained(ctx, rule, track, hyp, h)
            if found is not None:
                out.append(_sustained(ctx, cand, track, found))
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


def _evidence(ctx: Context, cand: Candidate, found: Finding) -> dict[str, Any]:
    rule = found.rule
    evidence = window_evidence(rule, found.hyp, found.run, found.start,
                               ctx.policy.bucket_seconds, ctx.candidate_ref.get(rule.name))
    evidence["baseline_from"] = ctx.baseline_from(rule.name)
    return evidence


def _transient(ctx: Context, cand: Candidate, found: Finding) -> Decision:
    rule = found.rule
    evidence = _evidence(ctx, cand, found)
    evidence.update(llr=round(found.llr, 3), threshold=round(found.bar, 3),
                    min_samples=ctx.policy.transient_min_samples, tests=["excursion-llr"],
                    detectors=["adwin-recovery"])
    reason = metric_reason(rule, evidence, cand.release, ctx.stable, Verdict.TRANSIENT)
    return _decision(ctx, cand, RuleAction.ALERT, Verdict.TRANSIENT, rule.components, reason,
                     evidence)


def _sustained(ctx: Context, cand: Candidate, track: MetricTrack, found: Finding) -> Decision:
    rule = found.rule
    track.done = True
    cand.fired.append(rule.name)
    evidence = _evidence(ctx, cand, found)
    evidence.update(llr=round(found.llr, 3), threshold=ctx.policy.evidence_threshold,
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
