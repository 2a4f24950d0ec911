"""The demo's simulated LLM service: what each output's evaluation looks like, by release and time.

Pure: the time (simulated seconds since the start) and the random generator are passed in.

>>> import random
>>> scenario = Scenario()
>>> sorted(scenario.metrics(RELEASES["v1"], 10.0, random.Random(1)))
['accuracy', 'complaint', 'cost_usd', 'error', 'hallucination', 'latency_ms', 'toxicity']
>>> scenario.phase(scenario.regression_at + 1)
'regression'
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

RELEASES = {
    "v1": {"model": "llm-2025-10", "prompt": "support-p41", "index": "kb-2025-11-01",
           "policy": "safety-7", "pipeline": "rag-3"},
    "v2": {"model": "llm-2025-11", "prompt": "support-p42", "index": "kb-2025-11-20",
           "policy": "safety-7", "pipeline": "rag-4"},
    "v3": {"model": "llm-2025-12", "prompt": "support-p43", "index": "kb-2025-12-01",
           "policy": "safety-7", "pipeline": "rag-4"},
}
"""The simulated service's releases; the faulty one's (by default v2's) prompt causes
hallucinations, its model latency. v3 is deployed only by the rollout scenario."""


@dataclass(frozen=True)
class Scenario:
    """Timeline in simulated seconds, and how bad the candidate gets.

    v1 serves alone until ``deploy_at``; then v2 takes ``canary_percent`` of traffic. The
    ``faulty`` release (v2) has a harmless ``blip_s``-long spike at ``blip_at`` and a sustained
    regression from ``regression_at`` that lasts until the end: its prompt raises
    hallucinations by ``hallucination_jump`` and its model multiplies latency by
    ``latency_factor``. Faults follow components, so a partial rollback of the faulty
    component really fixes it.
    """

    rate: float = 20.0  # outputs per simulated second, all releases together
    deploy_at: float = 180.0
    canary_percent: int = 50
    blip_at: float = 300.0
    blip_s: float = 60.0
    regression_at: float = 540.0
    hallucination_jump: float = 0.10
    latency_factor: float = 1.0
    ramp_s: float = 0.0  # > 0: the regression creeps in linearly over this long
    duration: float = 1200.0
    faulty: str = "v2"
    # Set: the ``rollouts`` releases are deployed by guarded rollouts through these steps
    # (docs/rollout.md), each once the one before is stable, instead of a canary promote.
    rollout_steps: tuple[float, ...] = ()
    rollouts: tuple[str, ...] = ("v2",)

    def phase(self, t: float) -> str:
        if t < self.deploy_at:
            return "stable only"
        if self.blip_at <= t < self.blip_at + self.blip_s:
            return "blip"
        if t >= self.regression_at:
            return "regression"
        return "canary"

    def metrics(self, components: Mapping[str, str], t: float,
                rng: random.Random) -> dict[str, float]:
        """One output's evaluation, served by ``components`` at simulated time ``t``."""
        hallucination, latency_scale = 0.04, 1.0
        faulty = RELEASES[self.faulty]
        new_prompt = components.get("prompt") == faulty["prompt"]
        new_model = components.get("model") == faulty["model"]
        phase = self.phase(t)
        if phase == "blip" and (new_prompt or new_model):
            hallucination += 0.25
            latency_scale = 2.0
        elif phase == "regression":
            grown = min(1.0, (t - self.regression_at) / self.ramp_s) if self.ramp_s else 1.0
            if new_prompt:
                hallucination += self.hallucination_jump * grown
            if new_model:
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
                       "release": release,
                       "metrics": scenario.metrics(RELEASES[release], t, rng)})
    return events


SCENARIOS: dict[str, Scenario] = {
    "regression": Scenario(),
    "blip": Scenario(regression_at=float("inf"), duration=900.0),
    "latency": Scenario(hallucination_jump=0.0, latency_factor=1.8),
    "both": Scenario(latency_factor=1.6),
    "gradual": Scenario(ramp_s=300.0, duration=1500.0),
    # v2 taken through 20, 50 and 100 % to stable; then v3, regressing from the start,
    # stopped at its first step.
    "rollout": Scenario(deploy_at=60.0, canary_percent=20, blip_at=float("inf"),
                        regression_at=0.0, faulty="v3", duration=1500.0,
                        rollout_steps=(20.0, 50.0, 100.0), rollouts=("v2", "v3")),
}
"""The demo's named scenarios: ``rollguard demo --scenario NAME``."""
