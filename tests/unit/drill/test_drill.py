"""The drill's pure parts: hops judged against their bounds, its traffic and where it lies in
event time, what policy explain expects of it, and what it exports and remembers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rollguard.actions.drills import DrillRecord
from rollguard.analysis.explain_policy import drawer, run, watched
from rollguard.base.errors import ConfigError
from rollguard.detectors.policy import default_policy, policy_from_dict
from rollguard.drill.metrics import DrillMetrics, render
from rollguard.drill.timeline import Bounds, Failed, Hop, Observation, Seen, Skipped, judge, lines
from rollguard.drill.traffic import (
    STABLE,
    WARMUP_BUCKETS,
    Shape,
    batches,
    drill_rule,
    expected_decision_s,
    first_bucket,
    make_plan,
)
from tests.support.policies import default_policy_document

NOW = 1_790_000_000.0
HEALTHY: dict[Hop, Observation] = {
    Hop.PROMOTE: Seen(0.1, took=0.01), Hop.EVENTS: Seen(2.6, took=0.02),
    Hop.DECISION: Seen(3.0, event_s=150.0), Hop.COMMAND: Seen(3.01), Hop.FLIP: Seen(3.02),
    Hop.READER: Seen(3.021), Hop.NOTIFY: Seen(5.1),
}


@pytest.mark.parametrize("change,failed,status", [
    ({}, None, None),
    ({Hop.NOTIFY: Skipped("no destination takes drills")}, None, None),
    ({Hop.FLIP: Seen(9.0)}, Hop.FLIP, "slow"),  # 6 s after the command: over 5 s
    ({Hop.DECISION: Seen(3.0, event_s=170.0)}, Hop.DECISION, "slow"),  # event time
    ({Hop.EVENTS: Seen(2.6, took=11.0)}, Hop.EVENTS, "slow"),  # the broker's own latency
    ({Hop.COMMAND: Failed("suppressed: pinned")}, Hop.COMMAND, "failed"),
    ({Hop.NOTIFY: Failed("refused"), Hop.FLIP: Seen(9.0)}, Hop.FLIP, "slow"),  # in hop order
])
def test_the_first_hop_that_failed_or_was_slow_is_named(
        change: dict[Hop, Observation], failed: Hop | None, status: str | None) -> None:
    """Each hop against its bound from the hop it follows; the first bad one in hop order."""
    verdict = judge({**HEALTHY, **change}, Bounds(decision_event_s=160.0))
    assert verdict.passed == (failed is None)
    found = verdict.failed
    assert (found.hop, found.status) == (failed, status) if found else failed is None


def test_hops_after_a_failure_are_not_reached_and_the_headline_says_why() -> None:
    observed: dict[Hop, Observation] = {Hop.PROMOTE: Seen(0.1), Hop.EVENTS: Seen(2.6),
                                        Hop.DECISION: Failed("no rollback of drill-01")}
    verdict = judge(observed, Bounds())
    assert [h.status for h in verdict.hops] == ["ok", "ok", "failed", "not reached",
                                                "not reached", "not reached", "not reached"]
    printed = lines(verdict)
    assert printed[-1] == "drill FAILED at rollback decided: no rollback of drill-01"
    assert printed[2].split()[:3] == ["FAIL", "rollback", "decided"]


def test_a_hop_seen_before_the_one_it_follows_took_no_time() -> None:
    """With paced events the decision can come before the last events were accepted."""
    verdict = judge({**HEALTHY, Hop.EVENTS: Seen(9.0, took=0.01)}, Bounds())
    assert next(h for h in verdict.hops if h.hop is Hop.DECISION).took == 0.0
    assert verdict.passed


def test_the_drill_picks_the_first_metric_that_rolls_back_the_whole_release() -> None:
    policy = default_policy()
    assert drill_rule(policy, Shape())[0].name == "hallucination"
    assert drill_rule(policy, Shape(metric="latency_ms"))[1] == 600.0
    document = default_policy_document()
    document["metrics"]["hallucination"]["action"] = "approve"
    assert drill_rule(policy_from_dict(document), Shape())[0].name == "toxicity"
    with pytest.raises(ConfigError, match=r"--metric hallucination: not a metric .* rollback"):
        drill_rule(policy_from_dict(document), Shape(metric="hallucination"))
    document["metrics"]["custom"] = {"statistic": "rate", "tolerance": 0.01}
    with pytest.raises(ConfigError, match="--base"):
        drill_rule(policy_from_dict(document), Shape(metric="custom"))


def test_the_decision_bound_is_what_policy_explain_expects_at_the_drill_traffic() -> None:
    """The 90th percentile of policy explain's runs, up to a whole bucket."""
    policy, shape = default_policy(), Shape(runs=4)
    rule = policy.metrics["hallucination"]
    delays = sorted(60 * (run(watched(policy), {rule.name: drawer(rule, 0.03)}, 20.0, 0.5, 10.0,
                              seed, window=1800.0, wanted={rule.name},
                              warmup=WARMUP_BUCKETS * 10.0)[rule.name] or math.inf)
                    for seed in range(4))
    assert expected_decision_s(policy, rule, 0.03, shape) == math.ceil(delays[-1] / 10) * 10
    with pytest.raises(ConfigError, match="raise --rate or --shift"):
        expected_decision_s(policy, rule, 0.03, Shape(rate=1.0, shift=1.5, runs=2))


@pytest.mark.parametrize("previous,start", [
    (0.0, 700.0),  # no drill before: all in the past
    (650.0, 700.0),  # the last drill ended before this one's span
    (905.0, 910.0),  # it ended later: the next bucket after it
    (1500.0, 1510.0),  # even after now: this drill's events wait for the clock
])
def test_a_drill_begins_after_the_last_one_in_event_time(previous: float, start: float) -> None:
    assert first_bucket(1000.0, previous, 300.0, 10.0) == start


def test_the_traffic_is_the_stable_alone_then_a_worse_canary_in_its_share() -> None:
    plan = make_plan(default_policy(), "rollguard-drill", 3, NOW, 0.0, Shape(runs=2))
    groups = batches(plan)
    events = [e for b in groups for e in b.events]
    assert len({e["event_id"] for e in events}) == len(events)
    assert plan.until <= NOW and plan.canary_at - plan.start == 60.0
    for batch in groups:
        assert all(batch.ready_at - 10.0 <= e["ts"] < batch.ready_at for e in batch.events)
        assert [e["ts"] for e in batch.events] == sorted(e["ts"] for e in batch.events)
        releases = {e["release"] for e in batch.events}
        assert releases == ({STABLE, plan.candidate} if batch.canary else {STABLE})
    stable = [e["metrics"]["hallucination"] for e in events if e["release"] == STABLE]
    canary = [e["metrics"]["hallucination"] for e in events if e["release"] == plan.candidate]
    assert len(canary) == pytest.approx(0.5 * (plan.until - plan.canary_at) * 20, rel=0.01)
    assert np.mean(canary) > np.mean(stable) + 5 * 0.02  # 10 tolerances of +2 pp, roughly


def test_the_metrics_export_the_last_success_and_each_hop() -> None:
    metrics = DrillMetrics()
    metrics.record(judge(HEALTHY, Bounds(decision_event_s=160.0)), None, ended_at=1234.0)
    text = render(metrics.snapshot()).decode()
    for line in ("rollguard_drill_last_success_timestamp_seconds 1234.0",
                 'rollguard_drill_runs_total{result="passed"} 1.0',
                 'rollguard_drill_hop_seconds{hop="flip"} 0.01',
                 'rollguard_drill_failed_hop{hop="flip"} 0.0',
                 "rollguard_drill_decision_event_seconds 150.0"):
        assert line in text


def test_the_drill_record_reads_back_what_was_written() -> None:
    record = DrillRecord(number=4, events_until=NOW, last_run_at=NOW + 5.0,
                         last_success_at=NOW + 5.0, last_result="passed")
    assert DrillRecord.from_fields({k.encode(): v.encode()
                                    for k, v in record.fields().items()}) == record
