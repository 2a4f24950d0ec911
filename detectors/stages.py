"""The decisions of a staged rollback (:mod:`detectors.staging` says when a step is due): the
first cut of a sustained finding, each further cut, the restore of a recovered candidate,
and the evidence of a decided metric that goes on being gathered meanwhile."""

from __future__ import annotations

from typing import Any

from rollguard.detectors.candidate import Candidate, Context, cohort_threshold
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.measure import Reading
from rollguard.detectors.staging import CUT, RESTORE, Stage, judge, staged_rule, watched_metrics
from rollguard.detectors.track import MetricTrack


def carry_on(ctx: Context, track: MetricTrack, reading: Reading, max_buckets: int) -> None:
    # A decided metric of a staged rule in progress: its evidence goes on being gathered.
    if reading.hyp is not None and track.update(
            ctx.bucket, reading.llr, reading.samples, reading.s,
            threshold=ctx.policy.evidence_threshold, max_buckets=max_buckets) is not None:
        track.close_episode()


def first_cut(ctx: Context, cand: Candidate, components: tuple[str, ...], reason: str,
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
