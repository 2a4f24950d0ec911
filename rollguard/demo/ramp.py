"""The demo's guarded rollouts (``rollguard demo --scenario rollout``): releases deployed one
after another by a plan an operator signs, what the pointer says each did, and the timeline
of the worker's verdicts (docs/rollout.md).

The first release is taken forward step by step on evidence and marked stable after its
bake; the next starts once it is stable, and so on. What each did is read from the pointer
the demo's reader follows (:class:`RampLog`); the verdicts (advanced, holds and why, stable,
ended) come from the alerts topic and are printed as they arrive (:func:`verdict_line`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console

from rollguard.actions.pointer import PointerStore
from rollguard.actions.rollout import share_of_release
from rollguard.actions.state import PointerState
from rollguard.demo.scenario import Scenario
from rollguard.demo.view import DemoState

# The demo rollout's plan: steps short enough for compressed time (docs/rollout.md).
DEMO_PLAN = {"min_seconds": 60, "min_samples": 100, "limit_seconds": 900,
             "bake_seconds": 120}
NEXT_AFTER_S = 30.0  # simulated seconds between a release marked stable and the next rollout


def demo_policy(path: Path) -> Path:
    """The shipped policy with looser tolerances on the rare binary metrics (so a step is
    shown no worse within a few simulated minutes at the demo's traffic), written to
    ``path``: the demo rollout's worker reads it (ROLLGUARD_POLICY)."""
    import yaml

    text = resources.files("rollguard.detectors").joinpath("default_policy.yaml").read_text(
        "utf-8")
    raw: dict[str, Any] = yaml.safe_load(text)
    raw["metrics"]["hallucination"]["tolerance"] = 0.05
    for name in ("error", "complaint"):
        raw["metrics"][name]["tolerance"] = 0.03
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


async def promote(store: PointerStore, service: str, release: str, percent: float | None,
                  secret: bytes) -> None:
    """What an operator's `rollguard promote` does: a signed promote command."""
    outcome = await store.issue(service, "promote", "demo-operator", release=release,
                                percent=percent, reason="demo deploy")
    outcome.raise_for_status()


async def start_rollout(store: PointerStore, service: str, release: str,
                        steps: tuple[float, ...], console: Console) -> None:
    """What an operator's `rollguard rollout start` does: a plan they sign."""
    plan = {"steps": list(steps), **DEMO_PLAN}
    outcome = await store.issue(service, "rollout_start", "demo-operator", release=release,
                                percent=steps[0], reason="demo rollout",
                                evidence={"plan": plan})
    console.print(outcome.raise_for_status().message)


@dataclass
class RampLog:
    """What one rollout did, as the pointer showed it: the shares its release served and when
    (simulated seconds), when it was marked stable or dropped (rolled back or aborted)."""

    release: str
    steps: list[tuple[float, float]] = field(default_factory=list)  # (percent, simulated s)
    stable_at: float | None = None
    dropped_at: float | None = None

    @property
    def ended(self) -> bool:
        return self.stable_at is not None or self.dropped_at is not None

    def observe(self, pointer: PointerState, sim_t: float) -> None:
        """Fold the pointer as it stands at ``sim_t`` in."""
        if self.ended:
            return
        share = share_of_release(pointer, self.release)
        if share >= 100.0 and pointer.stable == self.release and pointer.rollout is None:
            self.stable_at = sim_t
        elif share > 0.0:
            if not self.steps or self.steps[-1][0] != share:
                self.steps.append((share, sim_t))
        elif self.steps:
            self.dropped_at = sim_t

    def line(self) -> str:
        """One line of the summary (simulated seconds).

        >>> log = RampLog("v2", [(20.0, 60.0), (50.0, 210.0), (100.0, 290.0)], 420.0)
        >>> log.line()
        'v2: 20 % at 60 s, 50 % at 210 s, 100 % at 290 s; stable at 420 s'
        >>> RampLog("v3", [(20.0, 450.0)], dropped_at=600.0).line()
        'v3: 20 % at 450 s; rolled back at 20 % at 600 s'
        """
        steps = ", ".join(f"{p:g} % at {t:.0f} s" for p, t in self.steps) or "not started"
        if self.stable_at is not None:
            return f"{self.release}: {steps}; stable at {self.stable_at:.0f} s"
        if self.dropped_at is not None and self.steps:
            return (f"{self.release}: {steps}; rolled back at {self.steps[-1][0]:g} % at "
                    f"{self.dropped_at:.0f} s")
        return f"{self.release}: {steps}; still under way at the end"


def verdict_line(record: dict[str, Any], sim_t: float) -> str:
    """A worker's rollout verdict (the alerts topic) as a line of the demo's timeline.

    >>> verdict_line({"release": "v2", "action": "advance", "to_percent": 50.0, "reason":
    ...     "step 1 (20%) passed after 150 s: every metric that could roll back is ..."}, 210)
    '[  210s] v2 advanced to 50 %: step 1 (20%) passed after 150 s'
    """
    release, action = record.get("release"), record.get("action")
    reason = str(record.get("reason", ""))
    percent = record.get("percent")
    at = f"{float(percent):g} %" if isinstance(percent, int | float) else "?"
    if action == "advance":
        said = f"advanced to {record.get('to_percent'):g} %: {reason.split(': ', 1)[0]}"
    elif action == "hold":
        said = f"holds at {at}: {reason}"
    elif action == "stable":
        said = f"marked stable: {reason}"
    elif action == "abort":
        said = f"stopped at {at}: {reason}"
    else:
        said = f"{action} at {at}: {reason}"
    return f"[{sim_t:5.0f}s] {release} {said}"


class Rollouts:
    """Deploys the scenario's releases by guarded rollouts, each once the one before it is
    stable, and keeps what each did (:class:`RampLog`)."""

    def __init__(self, scenario: Scenario, store: PointerStore, service: str,
                 console: Console) -> None:
        self.scenario, self.store, self.service, self.console = scenario, store, service, console
        self.logs: list[RampLog] = []

    @property
    def current(self) -> RampLog | None:
        return self.logs[-1] if self.logs else None

    def _next_due(self, sim_t: float) -> str | None:
        """The release whose rollout starts now, if any."""
        releases = self.scenario.rollouts
        if len(self.logs) >= len(releases):
            return None
        last = self.current
        if last is None:
            return releases[0] if sim_t >= self.scenario.deploy_at else None
        if last.stable_at is not None and sim_t >= last.stable_at + NEXT_AFTER_S:
            return releases[len(self.logs)]
        return None

    async def tick(self, pointer: PointerState, sim_t: float) -> list[str]:
        """Follow the pointer; start the next rollout when it is due. Returns lines for the
        timeline: a release the pointer dropped."""
        said = []
        for log in self.logs:
            if not log.ended:
                log.observe(pointer, sim_t)
                if log.dropped_at is not None:
                    said.append(f"[{sim_t:5.0f}s] {log.release} rolled back: {pointer.active} "
                                f"serves all the traffic again (epoch {pointer.epoch})")
        release = self._next_due(sim_t)
        if release is not None:
            await start_rollout(self.store, self.service, release,
                                self.scenario.rollout_steps, self.console)
            self.logs.append(RampLog(release))
        return said

    @property
    def faulty_from(self) -> float | None:
        """When the faulty release began serving (it regresses from its first output)."""
        return next((log.steps[0][1] for log in self.logs
                     if log.release == self.scenario.faulty and log.steps), None)

    def phase(self) -> str:
        log = self.current
        if log is None:
            return "stable only"
        if log.stable_at is not None:
            return f"{log.release} stable"
        if log.dropped_at is not None:
            return f"{log.release} rolled back"
        share = f" {log.steps[-1][0]:g} %" if log.steps else ""
        return f"ramp {log.release}{share}"

    def lines(self) -> list[str]:
        return [log.line() for log in self.logs]


class Deployment:
    """How the scenario's new releases reach traffic: v2 promoted as a canary at
    ``deploy_at``, or (``rollout_steps`` set) guarded rollouts; kept in the view's state."""

    def __init__(self, scenario: Scenario, state: DemoState, store: PointerStore,
                 secret: bytes, console: Console) -> None:
        self.scenario, self.state, self.store, self.secret = scenario, state, store, secret
        self.rollouts = (Rollouts(scenario, store, state.service, console)
                         if scenario.rollout_steps else None)

    async def tick(self, pointer: PointerState, sim_t: float) -> None:
        m, scenario = self.state.milestones, self.scenario
        if self.rollouts is None:
            if m.deploy_sim is None and sim_t >= scenario.deploy_at:
                await promote(self.store, self.state.service, "v2", scenario.canary_percent,
                              self.secret)
                m.deploy_sim = sim_t
            if m.regression_sim is None and sim_t >= scenario.regression_at:
                m.regression_sim, m.regression_wall = scenario.regression_at, time.time()
            self.state.phase = scenario.phase(sim_t)
            return
        self.state.timeline += await self.rollouts.tick(pointer, sim_t)
        if m.deploy_sim is None and self.rollouts.logs:
            m.deploy_sim = sim_t
        if m.regression_sim is None and self.rollouts.faulty_from is not None:
            m.regression_sim, m.regression_wall = self.rollouts.faulty_from, time.time()
        self.state.phase = self.rollouts.phase()
        self.state.ramps = self.rollouts.logs
