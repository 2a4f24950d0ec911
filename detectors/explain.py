"""Readable reasons and evidence dictionaries for decisions (no decision logic here)."""

from __future__ import annotations

from typing import Any

from rollguard.detectors.accumulate import QUANTILE
from rollguard.detectors.decision import Verdict
from rollguard.detectors.evidence import Hypotheses
from rollguard.detectors.histogram import quantile
from rollguard.detectors.policy import MetricRule


def describe(rule: MetricRule) -> str:
    """A short name of what is measured, e.g. ``latency_ms p95`` or ``error rate``.

    >>> from rollguard.detectors.policy import default_policy
    >>> [describe(r) for r in default_policy().metrics.values()][:4]
    ['hallucination rate', 'toxicity share >= 0.5', 'accuracy mean', 'latency_ms p95']
    """
    if rule.statistic == "quantile":
        return f"{rule.name} p{round(rule.q * 100):d}"
    if rule.statistic == "share":
        return f"{rule.name} share >= {rule.threshold:g}"
    return f"{rule.name} {rule.statistic}"


def tolerance_text(rule: MetricRule) -> str:
    sign = "+" if rule.worse == "higher" else "-"
    if rule.relative:
        return f"{sign}{rule.tolerance * 100:g} %"
    if rule.statistic in ("rate", "share"):
        return f"{sign}{rule.tolerance * 100:g} pp"
    return f"{sign}{rule.tolerance:g}"


def fmt(value: float) -> str:
    """Three significant digits, the way a person reads a metric.

    >>> fmt(0.071234), fmt(1234.5), fmt(0.0)
    ('0.0712', '1.23e+03', '0')
    """
    return f"{value:.3g}"


def window_evidence(rule: MetricRule, hyp: Hypotheses, run: list[list[float]], start: int,
                    bucket_seconds: float, candidate_ref: list[Any] | None) -> dict[str, Any]:
    """Evidence of the stretch ``run[start:]``: values, sample counts, duration."""
    window = run[start:] if start < len(run) else run[-1:]
    n = sum(int(r[2]) for r in window)
    s = sum(r[3] for r in window)
    first, last = int(window[0][0]), int(window[-1][0])
    evidence: dict[str, Any] = {
        "metric": rule.name,
        "statistic": describe(rule),
        "tolerance": tolerance_text(rule),
        "baseline": round(hyp.baseline, 6),
        "baseline_samples": round(hyp.baseline_samples),
        "candidate_samples": n,
        "since": first * bucket_seconds,
        "duration_s": (last + 1 - first) * bucket_seconds,
    }
    if hyp.kind == QUANTILE:
        recent = quantile(candidate_ref[1], rule.q) if candidate_ref else float("nan")
        evidence["candidate"] = round(recent, 6) if recent == recent else None
        evidence["candidate_share_above_cut"] = round(s / n, 6) if n else None
    else:
        evidence["candidate"] = round(s / n, 6) if n else None
    return evidence


def metric_reason(rule: MetricRule, evidence: dict[str, Any], release: str, stable: str,
                  verdict: Verdict) -> str:
    """One sentence a person reads in an alert."""
    what = describe(rule)
    cand = evidence.get("candidate")
    cand_text = fmt(cand) if isinstance(cand, float | int) else "n/a"
    minutes = evidence["duration_s"] / 60
    values = (f"{what} of {release} is {cand_text} against {fmt(evidence['baseline'])} on "
              f"{stable} (tolerance {tolerance_text(rule)})")
    if verdict == Verdict.SUSTAINED:
        return (f"{values}, worse for {minutes:.1f} min over {evidence['candidate_samples']} "
                f"samples even leaving out the worst 2-minute stretch.")
    return f"{values} for {minutes:.1f} min, then recovered: a transient blip."
