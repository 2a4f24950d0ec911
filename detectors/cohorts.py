"""Cohorts (an event's ``cohort``: language, region, tier...): a stratified baseline for the
aggregate test, and a test per cohort.

* **Stratified aggregate.** When a service's events carry cohorts, the candidate's bucket is
  compared with the baseline *of the same mix*: each cohort's baseline reference weighted by
  the candidate's own share of that cohort in the bucket (direct standardisation). A
  candidate that only serves more of a cohort that is worse everywhere (a shifted mix) then
  matches its baseline, and is never rolled back for it (Simpson's paradox). The mixture's
  sample count is the effective one, ``1 / sum(w_c^2 / n_c)``, so a mixture leaning on a
  thin cohort is as uncertain as that cohort.
* **Per-cohort tests.** Each cohort's candidate is tested against the same cohort of the
  baseline, with its own track, the policy's minimum sample per cohort, and the threshold
  raised by ``ln(max_cohorts)`` (:func:`detectors.candidate.cohort_threshold`, Bonferroni on the
  CUSUM's false-alarm bound), so looking at many cohorts does not make false findings more
  likely. A finding names its cohort; the rule's ``cohort_action`` says what it does
  (``alert`` by default, ``rollback`` or ``staged``).
* **Bounded.** A service tracks at most ``max_cohorts`` cohorts: the first ``max_cohorts - 1``
  seen, and "other" pooling every later one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollguard.detectors.accumulate import KINDS, Bucket, weight
from rollguard.detectors.assess import _decision
from rollguard.detectors.candidate import Candidate, Context, cohort_threshold
from rollguard.detectors.decision import Decision, Verdict
from rollguard.detectors.evidence import hypotheses
from rollguard.detectors.explain import metric_reason, window_evidence
from rollguard.detectors.policy import MetricRule, RuleAction
from rollguard.detectors.track import MetricTrack, robust_score

OTHER = "other"


def slot_of(cohorts: list[str], cohort: str, cap: int) -> str:
    """The cohort ``cohort`` is counted under: itself while fewer than ``cap - 1`` are
    tracked (it is then added to ``cohorts``), else "other".

    >>> tracked = []
    >>> [slot_of(tracked, c, 3) for c in ("en", "de", "fr", "en")], tracked
    (['en', 'de', 'other', 'en'], ['en', 'de'])
    """
    if cohort in cohorts:
        return cohort
    if len(cohorts) < cap - 1 and cohort != OTHER:
        cohorts.append(cohort)
        return cohort
    return OTHER


def standardise(stable: Bucket, by_cohort: Mapping[str, Bucket],
                candidate: Mapping[str, Bucket], min_weight: Mapping[str, float]) -> Bucket:
    """``stable`` (the aggregate reference) with each metric the candidate has by cohort
    replaced by the cohorts' references mixed in the candidate's proportions. A cohort with
    less than ``min_weight`` of reference stands in with the aggregate reference.

    >>> a, b = [1000.0, 10.0, 10.0], [1000.0, 300.0, 300.0]          # 1 % and 30 %
    >>> agg = [2000.0, 310.0, 310.0]
    >>> mixed = standardise({"error": agg}, {"a": {"error": a}, "b": {"error": b}},
    ...                     {"a": {"error": [90, 1, 1]}, "b": {"error": [10, 3, 3]}},
    ...                     {"error": 100})
    >>> round(mixed["error"][1] / mixed["error"][0], 3)             # 0.9 x 1 % + 0.1 x 30 %
    0.039
    """
    mixed = dict(stable)
    for name, agg in stable.items():
        parts = [(sums[name][0], by_cohort.get(c, {}).get(name))
                 for c, sums in candidate.items() if name in sums]
        total = sum(n for n, _ in parts)
        if not total:
            continue
        pieces = [(n / total, ref if ref is not None and weight(ref) >= min_weight[name]
                   else agg) for n, ref in parts]
        mixed[name] = _mixture(pieces)
    return mixed


def _mixture(pieces: list[tuple[float, list[Any]]]) -> list[Any]:
    # sum of w x (the reference's per-sample sums), scaled to the effective sample count.
    n_eff = 1.0 / sum(w * w / weight(ref) for w, ref in pieces)
    if type(pieces[0][1][1]) is dict:  # histograms: [w, {bin: weight}, scale]
        hist: dict[int, float] = {}
        for w, ref in pieces:
            share = w * n_eff / ref[0]
            for b, c in ref[1].items():
                hist[b] = hist.get(b, 0.0) + c * share
        return [n_eff, dict(sorted(hist.items())), 1.0]
    return [n_eff, n_eff * sum(w * ref[1] / ref[0] for w, ref in pieces),
            n_eff * sum(w * ref[2] / ref[0] for w, ref in pieces)]


def assess_cohorts(ctx: Context, cand: Candidate, candidate: Mapping[str, Bucket],
                   by_cohort: Mapping[str, Bucket]) -> list[Decision]:
    """Test each cohort of ``cand`` in this bucket against the same cohort of the baseline."""
    policy = ctx.policy
    h = cohort_threshold(policy)
    blip_buckets, max_buckets, _ = ctx.buckets
    stage = cand.stage
    out: list[Decision] = []
    for cohort, sums in candidate.items():
        tracks = cand.cohort_tracks.setdefault(cohort, {})
        reference = by_cohort.get(cohort, {})
        for name, entry in sums.items():
            if cand.finished:
                return out
            rule = policy.metrics[name]
            track = tracks.get(name)
            if track is None:
                track = tracks[name] = MetricTrack()
            staged = stage is not None and stage.cohort == cohort and stage.rule == name
            if track.done and not staged:
                continue
            hyp = hypotheses(rule, KINDS[rule.statistic], reference.get(name),
                             policy.baseline_margin)
            if hyp is None:
                continue
            llr, s = hyp.score(entry)
            if track.update(ctx.bucket, llr, entry[0], s, threshold=h,
                            max_buckets=max_buckets) is not None:
                track.close_episode()
            if track.done or track.samples < rule.min_samples or track.cusum < h:
                continue
            track.score, start = robust_score(track.run, blip_buckets)
            if track.score >= h and track.recent_llr() >= 0.0:
                out.append(_finding(ctx, cand, rule, cohort, track, hyp, start, h))
    return out


def _finding(ctx: Context, cand: Candidate, rule: MetricRule, cohort: str, track: MetricTrack,
             hyp: Any, start: int, h: float) -> Decision:
    track.done = True
    evidence = window_evidence(rule, hyp, track.run, start, ctx.policy.bucket_seconds, None)
    evidence.update(cohort=cohort, llr=round(track.score, 3), threshold=round(h, 3),
                    cohorts_tested=ctx.policy.max_cohorts,
                    tests=["cusum-llr", "blip-robust-llr", "bonferroni-cohorts"], detectors=[])
    reason = (f"In cohort {cohort!r}: "
              f"{metric_reason(rule, evidence, cand.release, ctx.stable, Verdict.SUSTAINED)}")
    action = rule.cohort_action if rule.critical else RuleAction.ALERT
    return _decision(ctx, cand, action, Verdict.SUSTAINED, rule.components, reason, evidence)
