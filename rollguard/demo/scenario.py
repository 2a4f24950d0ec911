"""The demo's simulated LLM service: what each output's evaluation looks like, by release and time.

Pure: the time (simulated seconds since the start) and the random generator are passed in.

>>> import random
>>> scenario = Scenario()
>>> sorted(scenario.metrics("v1", 10.0, random.Random(1)))
['accuracy', 'complaint', 'cost_usd', 'error', 'hallucination', 'latency_ms', 'toxicity']
>>> scenario.phase(scenario.regression_at + 1)
'regression'
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """Timeline in simulated seconds, and how bad the candidate gets.

    v1 serves alone until ``deploy_at``; then v2 takes ``canary_percent`` of traffic. v2 has a
    harmless ``blip_s``-long spike at ``blip_at`` and a sustained regression from
    ``regression_at`` (hallucination up by ``hallucination_jump``, latency by
    ``latency_factor``) that lasts until the end.
    """

    rate: float = 20.0  # outputs per simulated second, all releases together
    deploy_at: float = 180.0
    canary_percent: int = 50
    blip_at: float = 300.0
    blip_s: float = 60.0
    regression_at: float = 540.0
    hallucination_jump: float = 0.10
    latency_factor: float = 1.6
    ramp_s: float = 0.0  # > 0: the regression creeps in linearly over this long
    duration: float = 1200.0

    def phase(self, t: float) -> str:
        if t < self.deploy_at:
            return "stable only"
        if self.blip_at <= t < self.blip_at + self.blip_s:
            return "blip"
        if t >= self.regression_at:
            return "regression"
        return "canary"

    def metrics(self, release: str, t: float, rng: random.Random) -> dict[str, float]:
        """One output's evaluation for ``release`` at simulated time ``t``."""
        hallucination, latency_scale = 0.04, 1.0
        if release != "v1":
            phase = self.phase(t)
            if phase == "blip":
                hallucination += 0.25
                latency_scale = 2.0
            elif phase == "regression":
                grown = min(1.0, (t - self.regression_at) / self.ramp_s) if self.ramp_s else 1.0
                hallucination += self.hallucination_jump * grown
                latency_scale = 1.0 + (self.latency_factor - 1.0) * grown
        return {
            "hallucination": float(rng.random() < hallucination),
            "toxicity": min(1.0, rng.betavariate(1.2, 30.0)),
            "accuracy": min(1.0, max(0.0, rng.gauss(0.88, 0.05))),
            "latency_ms": latency_scale * (350.0 + rng.lognormvariate(5.0, 0.6)),
            "cost_usd": max(0.0, rng.gauss(0.0030, 0.0004)),
            "error": float(rng.random() < 0.01),
            "complaint": float(rng.random() < 0.005),
        }


def canary_events(service: str, scenario: Scenario, seed: int = 7,
                  start_ts: float = 1_763_856_000.0) -> list[dict[str, object]]:
    """Wire-format events of the simulated service: v1 alone, then v2 on a canary share.

    >>> events = canary_events("bot", Scenario(rate=1.0, duration=200.0))
    >>> len(events), events[0]["release"], sorted({e["release"] for e in events})
    (200, 'v1', ['v1', 'v2'])
    """
    rng = random.Random(seed)
    events: list[dict[str, object]] = []
    step = 1.0 / scenario.rate
    for i in range(int(scenario.duration * scenario.rate)):
        t = i * step
        canary = t >= scenario.deploy_at and rng.random() * 100 < scenario.canary_percent
        release = "v2" if canary else "v1"
        events.append({"event_id": f"{service}-{i}", "ts": start_ts + t, "service": service,
                       "release": release, "metrics": scenario.metrics(release, t, rng)})
    return events


SCENARIOS: dict[str, Scenario] = {
    "regression": Scenario(),
    "blip": Scenario(regression_at=float("inf"), duration=900.0),
    "latency": Scenario(hallucination_jump=0.0, latency_factor=1.8),
    "gradual": Scenario(ramp_s=300.0, duration=1500.0),
}
"""The demo's named scenarios: ``rollguard demo --scenario NAME``."""
