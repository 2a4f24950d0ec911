"""The Prometheus metrics of ``rollguard drill --every``: a dead man's switch for the guard.

- ``rollguard_drill_last_success_timestamp_seconds``: when the last drill that passed
  ended (0 before one did): alert when it is too old (docs/drill.md);
- ``rollguard_drill_last_run_timestamp_seconds``: when the last drill ended, passed or not;
- ``rollguard_drill_runs_total{result}``: drills run, ``passed`` or ``failed``;
- ``rollguard_drill_hop_seconds{hop}``: each hop's latency in the last drill (NaN: not
  reached); ``rollguard_drill_hop_bound_seconds{hop}``: its bound;
- ``rollguard_drill_failed_hop{hop}``: 1 for the hop the last drill failed at, else 0;
- ``rollguard_drill_decision_event_seconds``: event time from the canary's first event to
  the rollback in the last drill; ``..._expected_seconds``: what policy explain expects.

>>> from rollguard.drill.timeline import Bounds, Failed, Hop, Seen, judge
>>> metrics = DrillMetrics()
>>> verdict = judge({Hop.PROMOTE: Seen(0.1), Hop.EVENTS: Failed("no topic")}, Bounds())
>>> metrics.record(verdict, None, ended_at=50.0)
>>> text = render(metrics.snapshot()).decode()
>>> 'rollguard_drill_failed_hop{hop="events"} 1.0' in text
True
>>> 'rollguard_drill_runs_total{result="failed"} 1.0' in text
True
"""

from __future__ import annotations

import math

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from rollguard.drill.timeline import Hop, Verdict
from rollguard.drill.traffic import Plan
from rollguard.streams.metrics import render

__all__ = ["DrillMetrics", "render"]


class DrillMetrics:
    """What the last drills said, as metric families."""

    def __init__(self) -> None:
        self.last_success = 0.0
        self.last_run = 0.0
        self.runs = {"passed": 0, "failed": 0}
        self.verdict: Verdict | None = None
        self.event_s = math.nan
        self.expected_s = math.nan

    def record(self, verdict: Verdict, plan: Plan | None, ended_at: float) -> None:
        self.verdict, self.last_run = verdict, ended_at
        self.runs["passed" if verdict.passed else "failed"] += 1
        if verdict.passed:
            self.last_success = ended_at
        self.expected_s = plan.expected_s if plan is not None else math.nan
        decision = next(h for h in verdict.hops if h.hop is Hop.DECISION)
        self.event_s = decision.event_s if decision.event_s is not None else math.nan

    def snapshot(self) -> list[Metric]:
        families: list[Metric] = [
            GaugeMetricFamily("rollguard_drill_last_success_timestamp_seconds",
                              "When the last drill that passed ended (0: none yet)",
                              value=self.last_success),
            GaugeMetricFamily("rollguard_drill_last_run_timestamp_seconds",
                              "When the last drill ended", value=self.last_run),
            GaugeMetricFamily("rollguard_drill_decision_event_seconds",
                              "Event time from the canary's first event to the rollback",
                              value=self.event_s),
            GaugeMetricFamily("rollguard_drill_decision_expected_seconds",
                              "What policy explain expects of that at the drill's traffic",
                              value=self.expected_s),
        ]
        runs = CounterMetricFamily("rollguard_drill_runs", "Drills run", labels=["result"])
        for result, count in self.runs.items():
            runs.add_metric([result], count)
        took = GaugeMetricFamily("rollguard_drill_hop_seconds",
                                 "Each hop's latency in the last drill (NaN: not reached)",
                                 labels=["hop"])
        bound = GaugeMetricFamily("rollguard_drill_hop_bound_seconds", "Each hop's bound",
                                  labels=["hop"])
        failed = GaugeMetricFamily("rollguard_drill_failed_hop",
                                   "1 for the hop the last drill failed at", labels=["hop"])
        first = self.verdict.failed if self.verdict is not None else None
        for hop in self.verdict.hops if self.verdict is not None else ():
            label = [hop.hop.value]
            took.add_metric(label, math.nan if hop.took is None else hop.took)
            bound.add_metric(label, hop.bound)
            failed.add_metric(label, float(first is not None and first.hop is hop.hop))
        return [*families, runs, took, bound, failed]
