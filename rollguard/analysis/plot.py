"""``replay --plot``: each metric's candidate and baseline over time, the tolerance band and
markers where alerts and rollbacks fired. matplotlib is optional: ``rollguard[plot]``."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollguard.base.errors import ConfigError
from rollguard.detectors.decision import Decision
from rollguard.detectors.events import Event
from rollguard.detectors.explain import describe, tolerance_text
from rollguard.detectors.histogram import bin_of, quantile
from rollguard.detectors.policy import MetricRule, Policy

SMOOTH_MINUTES = 5  # lines are trailing 5-minute values: per-minute ones are mostly noise


def require_matplotlib() -> None:
    """Fail early, before a long replay, when the optional plotting extra is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'rollguard[plot]'") from None


class SeriesRecorder:
    """Per-minute sums of every (service, release, metric) seen, for plotting."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.sums: dict[tuple[str, str, str], dict[int, list[Any]]] = defaultdict(dict)
        self.first_seen: dict[tuple[str, str], float] = {}
        self.events: dict[str, int] = defaultdict(int)

    def add(self, event: Event) -> None:
        minute = int(event.ts // 60)
        self.events[event.service] += 1
        self.first_seen.setdefault((event.service, event.release), event.ts)
        for name, value in event.metrics.items():
            rule = self.policy.metrics.get(name)
            if rule is None:
                continue
            per_minute = self.sums[(event.service, event.release, name)]
            entry = per_minute.get(minute)
            if entry is None:
                entry = per_minute[minute] = [0, 0.0, {}]
            entry[0] += 1
            if rule.statistic == "quantile":
                entry[2][bin_of(value)] = entry[2].get(bin_of(value), 0) + 1
            else:
                entry[1] += float(value >= rule.threshold) if rule.statistic == "share" else value

    def series(self, service: str, release: str,
               rule: MetricRule) -> tuple[list[float], list[float]]:
        """Trailing-window values per minute: (minute start ts, value)."""
        per_minute = self.sums.get((service, release, rule.name), {})
        xs: list[float] = []
        ys: list[float] = []
        for minute in sorted(per_minute):
            window = [per_minute[m] for m in range(minute - SMOOTH_MINUTES + 1, minute + 1)
                      if m in per_minute]
            n = sum(e[0] for e in window)
            if rule.statistic == "quantile":
                hist: dict[int, float] = {}
                for e in window:
                    for b, c in e[2].items():
                        hist[b] = hist.get(b, 0) + c
                value = quantile(hist, rule.q)
            else:
                value = sum(e[1] for e in window) / n
            xs.append(minute * 60.0)
            ys.append(value)
        return xs, ys


def _roles(recorder: SeriesRecorder, service: str) -> tuple[str | None, str | None]:
    releases = sorted((ts, r) for (s, r), ts in recorder.first_seen.items() if s == service)
    stable = releases[0][1] if releases else None
    candidate = releases[-1][1] if len(releases) > 1 else None
    return stable, candidate


def draw(recorder: SeriesRecorder, decisions: list[Decision], path: str | Path,
         service: str | None = None) -> Path:
    """Write a PNG; by default of the service with the first rollback (else the busiest)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if service is None:
        rollbacks = [d.service for d in decisions if d.action == "rollback"]
        busiest = max(recorder.events, key=lambda s: recorder.events[s], default="")
        service = rollbacks[0] if rollbacks else busiest
    stable, candidate = _roles(recorder, service)
    mine = [d for d in decisions if d.service == service]
    if candidate is None:
        candidate = mine[0].release if mine else None
    rules = [r for r in recorder.policy.metrics.values()
             if any(k[0] == service and k[2] == r.name for k in recorder.sums)]
    rows = max(1, math.ceil(len(rules) / 2))
    fig, axes = plt.subplots(rows, 2 if len(rules) > 1 else 1, figsize=(14, 2.6 * rows + 0.8),
                             sharex=True, squeeze=False)
    t0 = min((ts for (s, _), ts in recorder.first_seen.items() if s == service), default=0.0)
    panel = _Panel(recorder, service, stable, candidate, mine, t0)
    for ax, rule in zip(axes.flat, rules, strict=False):
        panel.draw(ax, rule)
    for ax in axes.flat[len(rules):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("minutes since the first event")
    fig.legend(handles=_legend(stable, candidate), loc="upper right", ncol=3, fontsize=9,
               frameon=False)
    start = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d %H:%M UTC")
    verdict = next((f"rolled back {d.release} to {d.to}" for d in mine if d.action == "rollback"),
                   "no rollback")
    fig.suptitle(f"{service}: {verdict}  (from {start}; lines are trailing "
                 f"{SMOOTH_MINUTES}-minute values)", x=0.01, ha="left", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


@dataclass
class _Panel:
    """One metric's chart: baseline with its tolerance band, candidate, decisions."""

    recorder: SeriesRecorder
    service: str
    stable: str | None
    candidate: str | None
    decisions: list[Decision]
    t0: float

    def minutes(self, xs: list[float]) -> list[float]:
        return [(x - self.t0) / 60 for x in xs]

    def draw(self, ax: Any, rule: MetricRule) -> None:
        recorder, service = self.recorder, self.service
        if self.stable:
            bx, by = recorder.series(service, self.stable, rule)
            ax.plot(self.minutes(bx), by, color="0.35", lw=1.5)
            band = [b * (1 + rule.sign * rule.tolerance) if rule.relative
                    else b + rule.sign * rule.tolerance for b in by]
            ax.fill_between(self.minutes(bx), by, band, color="tab:green", alpha=0.18, lw=0)
        if self.candidate:
            cx, cy = recorder.series(service, self.candidate, rule)
            ax.plot(self.minutes(cx), cy, color="tab:blue", lw=1.8)
            deploy = recorder.first_seen.get((service, self.candidate))
            if deploy is not None:
                ax.axvline((deploy - self.t0) / 60, color="tab:blue", ls=":", lw=1)
        for d in self.decisions:
            self.mark(ax, d, rule)
        ax.set_title(f"{describe(rule)}   (tolerance {tolerance_text(rule)})", fontsize=10,
                     loc="left")
        ax.grid(alpha=0.3)

    def mark(self, ax: Any, d: Decision, rule: MetricRule) -> None:
        concerned = d.evidence.get("metric") == rule.name or rule.name in d.evidence.get(
            "composite", [])
        x = (d.ts - self.t0) / 60
        if d.action == "rollback":
            ax.axvline(x, color="tab:red", lw=2.2 if concerned else 0.8,
                       alpha=1.0 if concerned else 0.5)
            if concerned:
                ax.annotate("ROLLBACK", (x, 1.0), xycoords=("data", "axes fraction"),
                            color="tab:red", fontsize=8, fontweight="bold",
                            ha="right", va="top", rotation=90)
        elif concerned:
            ax.axvline(x, color="tab:orange", ls="--", lw=1.4)
            ax.annotate(d.verdict, (x, 1.0), xycoords=("data", "axes fraction"),
                        color="tab:orange", fontsize=8, ha="right", va="top", rotation=90)


def _legend(stable: str | None, candidate: str | None) -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return [Line2D([], [], color="0.35", lw=1.5, label=f"baseline {stable}"),
            Line2D([], [], color="tab:blue", lw=1.8, label=f"candidate {candidate}"),
            Patch(color="tab:green", alpha=0.18, label="tolerance band"),
            Line2D([], [], color="tab:blue", ls=":", label="candidate deployed"),
            Line2D([], [], color="tab:red", lw=2.2, label="rollback"),
            Line2D([], [], color="tab:orange", ls="--", label="alert")]
