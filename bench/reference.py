"""The two reference deciders the default policy is compared with (bench only).

* :class:`FixedRule` -- the seeds' rule: per 1-minute window of the candidate, roll back when
  the hallucination rate > 0.15, or accuracy < 0.85, or the error rate > 0.05.
* :class:`ArgoStyle` -- Argo Rollouts' analysis: one measurement per minute per metric, a
  failure when the candidate is worse than the baseline (the stable's same minute, or its last
  measured minute once it stops serving) by more than the tolerance; roll back when the
  failures exceed ``failure_limit`` = 2. No minimum sample, no consecutive logic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from bench.scenarios import STABLE
from rollguard.detectors.events import Event
from rollguard.detectors.histogram import quantile
from rollguard.detectors.policy import MetricRule, Policy, default_policy


class FixedRule:
    name = "fixed rule (1-min window)"

    def decide(self, events: Iterable[Event]) -> float | None:
        """Event time of the first rollback, or None."""
        minute = -1
        sums: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        for e in events:
            if e.release == STABLE:
                continue
            m = int(e.ts // 60)
            if m != minute:
                if minute >= 0 and self._bad(sums):
                    return e.ts
                minute, sums = m, defaultdict(lambda: [0, 0.0])
            for name in ("hallucination", "accuracy", "error"):
                if name in e.metrics:
                    sums[name][0] += 1
                    sums[name][1] += e.metrics[name]
        return None

    @staticmethod
    def _bad(sums: dict[str, list[float]]) -> bool:
        def mean(name: str) -> float | None:
            n, s = sums[name]
            return s / n if n else None
        h, a, err = mean("hallucination"), mean("accuracy"), mean("error")
        return ((h is not None and h > 0.15) or (a is not None and a < 0.85)
                or (err is not None and err > 0.05))


class ArgoStyle:
    name = "Argo-style (1/min, failureLimit 2)"

    def __init__(self, policy: Policy | None = None, failure_limit: int = 2) -> None:
        self.policy = policy or default_policy()
        self.failure_limit = failure_limit

    def decide(self, events: Iterable[Event]) -> float | None:
        from rollguard.detectors.histogram import bin_of

        rules = self.policy.metrics
        failures: dict[str, int] = defaultdict(int)
        minute = -1
        last_base: dict[str, float] = {}
        sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
        hists: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
        for e in events:
            m = int(e.ts // 60)
            if m != minute:
                if minute >= 0:
                    for name in self._measure(rules, sums, hists, last_base):
                        failures[name] += 1
                        if failures[name] > self.failure_limit:
                            return e.ts
                minute = m
                sums.clear()
                hists.clear()
            role = "stable" if e.release == STABLE else "candidate"
            for name, value in e.metrics.items():
                rule = rules.get(name)
                if rule is None:
                    continue
                if rule.statistic == "quantile":
                    h = hists[(role, name)]
                    h[bin_of(value)] = h.get(bin_of(value), 0) + 1
                    continue
                if rule.statistic == "share":
                    value = float(value >= rule.threshold)
                s = sums[(role, name)]
                s[0] += 1
                s[1] += value
        return None

    @staticmethod
    def _measure(rules, sums, hists, last_base) -> list[str]:
        failed = []
        for name, rule in rules.items():
            def value(role: str, name: str = name, rule: MetricRule = rule) -> float | None:
                if rule.statistic == "quantile":
                    h = hists.get((role, name))
                    return quantile(h, rule.q) if h else None
                n, s = sums.get((role, name), (0, 0.0))
                return s / n if n else None
            cand = value("candidate")
            base = value("stable")
            if base is not None:
                last_base[name] = base
            base = last_base.get(name)
            if cand is None or base is None:
                continue
            tol = rule.tolerance * abs(base) if rule.relative else rule.tolerance
            if rule.sign * (cand - base) > tol:
                failed.append(name)
        return failed
