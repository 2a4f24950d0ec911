"""Assess one closed bucket of a candidate: update each metric's track, emit decisions."""

from __future__ import annotations

from typing import Any

from rollguard.detectors.accumulate import KINDS, Bucket
from rollguard.detectors.candidate import Candidate, Context
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.evidence import hypotheses
from rollguard.detectors.explain import metric_reason, window_evidence
from rollguard.detectors.policy import CompositeRule, MetricRule, RuleAction
from rollguard.detectors.stages import carry_on, first_cut
from rollguard.detectors.staging import watched_metrics
from rollguard.detectors.track import MetricTrack, excursion, robust_score
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
                carry_on(ctx, rule, track, entry, max_buckets)
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
