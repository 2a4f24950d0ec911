"""The demo's live view: traffic, metrics against the baseline, alerts, the pointer, the server.

``render(state)`` builds a rich renderable from plain data; nothing here does I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from rollguard.demo.scenario import Scenario

if TYPE_CHECKING:
    from rollguard.demo.ramp import RampLog

METRICS = ("hallucination", "toxicity", "accuracy", "latency_ms", "cost_usd", "error", "complaint")
WINDOW_S = 60.0


@dataclass
class Milestones:
    """Wall-clock (``*_wall``) and simulated (``*_sim``) moments the summary reports."""

    deploy_sim: float | None = None
    regression_sim: float | None = None
    regression_wall: float | None = None
    decided_sim: float | None = None
    decided_wall: float | None = None
    applied_wall: float | None = None
    switched_wall: float | None = None
    transient_alerts: int = 0
    rollbacks: int = 0


@dataclass
class DemoState:
    service: str
    speed: float
    sim_t: float = 0.0
    phase: str = "starting"
    # per release: deque of (sim_t, metrics) within the last WINDOW_S simulated seconds
    recent: dict[str, deque[tuple[float, dict[str, float]]]] = field(default_factory=dict)
    emitted: dict[str, int] = field(default_factory=dict)
    pointer: str = "?"
    server: str = "?"
    alerts: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    slack: list[str] = field(default_factory=list)  # the captured messages, as Slack shows them
    milestones: Milestones = field(default_factory=Milestones)
    wall0: float = 0.0  # the wall-clock time (time.time()) of simulated second 0
    timeline: list[str] = field(default_factory=list)  # the rollouts' verdicts, as lines
    ramps: list[RampLog] = field(default_factory=list)  # what each guarded rollout did

    def sim_of(self, wall: float) -> float:
        """The simulated second of a wall-clock time (time.time())."""
        return (wall - self.wall0) * self.speed

    def record(self, release: str, t: float, metrics: dict[str, float]) -> None:
        window = self.recent.setdefault(release, deque())
        window.append((t, metrics))
        while window and window[0][0] < t - WINDOW_S:
            window.popleft()
        self.emitted[release] = self.emitted.get(release, 0) + 1

    def mean(self, release: str, metric: str) -> float | None:
        values = [m[metric] for _, m in self.recent.get(release, ()) if metric in m]
        return sum(values) / len(values) if values else None

    def rate(self, release: str) -> float:
        window = self.recent.get(release)
        return len(window) / WINDOW_S if window else 0.0


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "—"
    if metric == "latency_ms":
        return f"{value:,.0f} ms"
    if metric == "cost_usd":
        return f"${value:.4f}"
    return f"{value * 100:.1f} %"


def _worse(metric: str, candidate: float, baseline: float) -> bool:
    """A rough colour cue only; the decision is the worker's."""
    if metric == "accuracy":
        return candidate < baseline - 0.03
    if metric in ("latency_ms", "cost_usd"):
        return candidate > baseline * 1.25
    return candidate > baseline + 0.02


def metrics_table(state: DemoState, baseline: str = "v1", candidate: str = "v2") -> Table:
    table = Table(title=f"last {WINDOW_S:.0f} s (simulated), mean per output", expand=True)
    table.add_column("metric")
    table.add_column(f"{baseline} (baseline)", justify="right")
    table.add_column(f"{candidate} (candidate)", justify="right")
    for metric in METRICS:
        base, cand = state.mean(baseline, metric), state.mean(candidate, metric)
        style = "red bold" if base is not None and cand is not None and _worse(
            metric, cand, base) else ""
        table.add_row(metric, _fmt(metric, base), Text(_fmt(metric, cand), style=style))
    return table


def traffic_table(state: DemoState) -> Table:
    table = Table(title="traffic", expand=True)
    table.add_column("release")
    table.add_column("outputs/s (sim)", justify="right")
    table.add_column("emitted", justify="right")
    for release in sorted(state.emitted):
        table.add_row(release, f"{state.rate(release):.1f}", f"{state.emitted[release]:,}")
    return table


def render(state: DemoState) -> Group:
    minutes, seconds = divmod(int(state.sim_t), 60)
    header = Text.assemble(
        ("rollguard demo ", "bold"), f"service {state.service}  ",
        f"simulated {minutes:02d}:{seconds:02d} (speed x{state.speed:g})  ",
        ("phase: ", "dim"), (state.phase, "yellow" if state.phase != "regression" else "red"),
    )
    pointer = Text.assemble(("pointer  ", "bold"), state.pointer, "\n",
                            ("server   ", "bold"), state.server)
    alerts = Text("\n".join(state.alerts) or "none yet", style="cyan")
    slack = Text(state.slack[-1] if state.slack else "none yet")
    return Group(
        Panel(header),
        traffic_table(state),
        metrics_table(state),
        Panel(pointer, title="version pointer and a serving process"),
        Panel(alerts, title="alerts topic"),
        Panel(slack, title=f"Slack, the latest of {len(state.slack)} message(s) in the thread"),
    )


def summary(state: DemoState) -> str:
    """The closing lines: what each guarded rollout did (steps and simulated times, stable
    or rolled back), when the regression began, was decided, and servers switched."""
    m = state.milestones
    lines = [f"transient alerts: {m.transient_alerts}; rollbacks: {m.rollbacks}"]
    if state.ramps:
        lines.append("guarded rollouts (simulated time):")
        lines += [f"  {log.line()}" for log in state.ramps]
    if m.regression_sim is not None:
        lines.append(f"regression began at simulated {m.regression_sim:.0f} s")
    if m.decided_sim is not None and m.regression_sim is not None:
        lines.append(f"rollback decided at simulated {m.decided_sim:.0f} s "
                     f"({m.decided_sim - m.regression_sim:.0f} s of event time after onset)")
    elif m.regression_sim is not None:
        lines.append("no rollback was decided")
    if m.decided_wall is not None and m.applied_wall is not None:
        lines.append(f"pointer flipped {1000 * (m.applied_wall - m.decided_wall):.0f} ms "
                     "after the decision")
    if m.decided_wall is not None and m.switched_wall is not None:
        lines.append(f"serving process switched {1000 * (m.switched_wall - m.decided_wall):.0f} "
                     "ms after the decision")
    return "\n".join(lines)


def explain_hint(scenario: Scenario) -> str:
    """How long detection takes at the demo's traffic, asked of the policy before a release.

    >>> explain_hint(Scenario(rate=20.0, canary_percent=10)).split(": ")[1]
    'rollguard policy explain --rate 20 --share 0.1'
    """
    return ("before a release, ask how long a regression would go unnoticed at your traffic: "
            f"rollguard policy explain --rate {scenario.rate:g} "
            f"--share {scenario.canary_percent / 100:g}")
