"""Which metrics of a candidate cannot be judged, and the one notice that says so.

A metric cannot be judged when it stopped arriving (no sample for ``stale_after_seconds``
while the candidate's events still arrive), or, once the candidate has been watched for
``inconclusive_after_seconds``, when the candidate has fewer than ``min_samples`` of it or
the baseline (the stable's decayed reference) holds fewer than that. One inconclusive notice
per candidate names every such metric, why, and the traffic it would need; a new notice
comes only when a metric joins that list, or one with too little data stops arriving (a
metric that can be judged again leaves it silently; one that stopped arriving and stops
again is news again).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rollguard.detectors.accumulate import weight
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.explain import describe

if TYPE_CHECKING:
    from rollguard.detectors.candidate import Candidate, Context

STOPPED, SAMPLES, BASELINE = "stopped", "samples", "baseline"


def unjudged(ctx: Context, cand: Candidate) -> dict[str, dict[str, Any]]:
    """Metric -> why it cannot be judged now, with the traffic it would need (samples/s)."""
    policy = ctx.policy
    waited = (ctx.bucket - cand.first_bucket) * policy.bucket_seconds
    # A decayed reference of r samples/s settles at r x bucket / (1 - decay) samples.
    per_weight = (1 - policy.bucket_decay
                  ) / policy.bucket_seconds
    out: dict[str, dict[str, Any]] = {}
    for name, rule in policy.metrics.items():
        track = cand.tracks.get(name)
        if track is None or track.done or name in ctx.concurrent:
            continue  # (in a storm the baseline is the stable at the same moments: for now)
        ref = ctx.stable_ref.get(name)
        if ref is None and not track.samples:
            continue  # neither release sends it: not a metric of this service
        if track.stale:
            out[name] = {"why": STOPPED, "samples": track.samples,
                         "silent_s": (ctx.bucket - track.last_bucket) * policy.bucket_seconds}
        elif waited < policy.inconclusive_after_seconds:
            continue
        elif ref is None or weight(ref) < rule.min_samples:
            held = weight(ref) if ref is not None else 0.0
            out[name] = {"why": BASELINE, "baseline_samples": round(held),
                         "min_samples": rule.min_samples,
                         "needs_per_s": _rate(rule.min_samples * per_weight),
                         "has_per_s": _rate(held * per_weight)}
        elif track.samples < rule.min_samples:
            out[name] = {"why": SAMPLES, "samples": track.samples,
                         "min_samples": rule.min_samples,
                         "needs_per_s": _rate(rule.min_samples
                                              / policy.inconclusive_after_seconds),
                         "has_per_s": _rate(track.samples / waited)}
    return out


def _rate(value: float) -> float:
    # Three significant digits, rounded up: the traffic needed is a lower bound.
    if value <= 0:
        return 0.0
    digits = 2 - math.floor(math.log10(value))
    return math.ceil(value * 10 ** digits) / 10 ** digits


def inconclusive_notice(ctx: Context, cand: Candidate) -> Decision | None:
    """The notice about the metrics that cannot be judged, when their list changed."""
    if (not cand.noticed and (ctx.bucket - cand.first_bucket) * ctx.policy.bucket_seconds
            < ctx.policy.inconclusive_after_seconds
            and not any(t.stale for t in cand.tracks.values())):
        return None  # the usual case, early on: nothing to look at yet
    found = unjudged(ctx, cand)
    # Said once: a metric's reason stays noticed when it comes and goes (a baseline near its
    # minimum flickers), except "stopped", which ends when the metric arrives again.
    noticed = {name: why for name, why in cand.noticed.items()
               if why != STOPPED or found.get(name, {}).get("why") == STOPPED}
    news = any(_kind(noticed.get(name)) != _kind(why["why"]) for name, why in found.items())
    noticed.update((name, why["why"]) for name, why in found.items())
    cand.noticed = noticed
    if not news:
        return None
    waited = (ctx.bucket - cand.first_bucket) * ctx.policy.bucket_seconds
    parts = [f"{describe(ctx.policy.metrics[name])} ({_text(why, ctx.stable)})"
             for name, why in found.items()]
    reason = (f"{cand.release} cannot be judged on {len(found)} metric"
              f"{'s' if len(found) > 1 else ''} after {waited / 60:.0f} min: "
              f"{'; '.join(parts)}.")
    evidence = {"metrics": found, "waited_s": waited}
    return Decision(ctx.ts, ctx.service, cand.release, DecisionAction.ALERT,
                    Verdict.INCONCLUSIVE, ctx.stable, [], reason, evidence)


def _kind(why: str | None) -> str | None:
    # Too few samples of the candidate or of the baseline is one kind of news: near the
    # minimum the two can take turns from bucket to bucket.
    return "thin" if why in (SAMPLES, BASELINE) else why


def _text(why: dict[str, Any], stable: str) -> str:
    if why["why"] == STOPPED:
        return f"stopped arriving {why['silent_s'] / 60:.0f} min ago"
    if why["why"] == BASELINE:
        return (f"the baseline {stable} holds {why['baseline_samples']} samples of the "
                f"{why['min_samples']} needed; needs >= {why['needs_per_s']:g} samples/s on "
                f"{stable}, has {why['has_per_s']:g}/s")
    return (f"{why['samples']} samples of the {why['min_samples']} needed; needs >= "
            f"{why['needs_per_s']:g} samples/s, has {why['has_per_s']:g}/s")
