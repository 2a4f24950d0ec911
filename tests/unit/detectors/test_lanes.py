"""Evaluation results are judged on their own clock (detectors/lanes.py): a judge's lag never
makes them too late, the spans' metrics never wait for them, and one source stamped far
ahead never blinds the other."""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.scenarios import Scenario
from rollguard.detectors.blocks import Block
from rollguard.detectors.decision import Decision
from rollguard.detectors.errors import ConfigError
from rollguard.detectors.events import Event
from rollguard.detectors.lanes import split_block
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.monitors import MonitorSet
from rollguard.detectors.policy import Policy, default_policy, policy_from_dict
from rollguard.detectors.resolved import policy_document

POLICY = default_policy()
SLOW = frozenset(POLICY.opentelemetry.evaluation_metrics)
MINUTE = 60.0


def one_clock() -> Policy:
    """The default policy with no evaluation lane: every metric on the service's clock."""
    doc = policy_document(POLICY)
    doc["opentelemetry"]["evaluation_metrics"] = []
    return policy_from_dict(doc, name="default")


def as_telemetry(events: Iterable[Event], lag: float) -> Iterator[tuple[float, Event]]:
    """Each output as OpenTelemetry gives it: a span (its fast metrics) when it is served,
    and one evaluation result per evaluation metric ``lag`` seconds later, in arrival order."""
    spans: list[tuple[float, Event]] = []
    later: list[tuple[float, int, Event]] = []
    n = 0
    for event in events:
        fast = {k: v for k, v in event.metrics.items() if k not in SLOW}
        spans.append((event.ts, dataclasses.replace(event, metrics=fast)))
        for name, value in event.metrics.items():
            if name in SLOW:
                n += 1
                later.append((event.ts + lag, n, dataclasses.replace(
                    event, event_id=f"{event.event_id}/{name}", metrics={name: value})))
    merged = heapq.merge(((t, 0, e) for t, e in spans), later, key=lambda x: (x[0], x[1]))
    for arrival, _n, event in merged:
        yield arrival, event


def run(policy: Policy, stream: Iterable[tuple[float, Event]]
        ) -> tuple[list[tuple[float, Decision]], list[str]]:
    """Feed a stream as the worker does; the rollbacks with their arrival times, and the
    reasons of what was set aside."""
    monitors = MonitorSet(policy)
    rollbacks: list[tuple[float, Decision]] = []
    rejected: list[str] = []
    for arrival, event in stream:
        fed = monitors.feed([(event, None, None)])
        rejected += [r.reason for r in fed.rejected]
        rollbacks += [(arrival, d) for d in fed.decisions if d.action == "rollback"]
    rollbacks += [(float("inf"), d) for d in monitors.flush() if d.action == "rollback"]
    return rollbacks, rejected


HALLUCINATING = Scenario(5, rate=2.0, metric="hallucination", magnitude=4.0, onset=300.0,
                         duration=2400.0)
SLOWER = Scenario(6, rate=2.0, metric="latency_ms", magnitude=4.0, onset=300.0,
                  duration=2400.0)


@pytest.mark.parametrize("lag", [1 * MINUTE, 5 * MINUTE, 15 * MINUTE])
def test_evaluations_lagging_behind_their_spans_count_and_roll_a_regression_back(
        lag: float) -> None:
    """A regression seen only in evaluation results that come 1, 5 or 15 minutes after the
    outputs' spans: none is too late, and it is rolled back once, within the scenario's
    deadline of event time; it reaches the operator `lag` later than the spans would."""
    rollbacks, rejected = run(POLICY, as_telemetry(HALLUCINATING.events(), lag))
    assert rejected == []
    assert len(rollbacks) == 1
    arrival, decision = rollbacks[0]
    truth = HALLUCINATING.truth()
    assert truth.deadline is not None and decision.ts <= truth.deadline
    assert decision.evidence["metric"] == "hallucination"
    assert arrival == pytest.approx(decision.ts + lag, abs=60.0)


def test_on_one_clock_evaluations_fifteen_minutes_late_are_all_too_late() -> None:
    """The negative control: with every metric on the service's clock, the spans move its
    time and the same evaluations are all dead letters; the regression goes unseen."""
    rollbacks, rejected = run(one_clock(), as_telemetry(HALLUCINATING.events(), 15 * MINUTE))
    assert rollbacks == []
    assert rejected and set(rejected) == {"too_late"}


@pytest.mark.parametrize("lag", [0.0, 5 * MINUTE, 15 * MINUTE])
def test_span_metrics_decide_without_waiting_for_the_evaluations(lag: float) -> None:
    """A latency regression is rolled back at the same moment, in event time and in arrival,
    however late the evaluations of the same outputs come."""
    alone, _ = run(POLICY, ((e.ts, dataclasses.replace(
        e, metrics={k: v for k, v in e.metrics.items() if k not in SLOW}))
        for e in SLOWER.events()))
    rollbacks, rejected = run(POLICY, as_telemetry(SLOWER.events(), lag))
    assert rejected == []
    assert [(a, d.ts, d.evidence["metric"]) for a, d in rollbacks] == [
        (a, d.ts, d.evidence["metric"]) for a, d in alone]
    assert alone and alone[0][1].evidence["metric"] == "latency_ms"


@pytest.mark.parametrize("ahead", [3600.0, 86_400.0])
def test_spans_stamped_far_ahead_do_not_blind_the_evaluations(ahead: float) -> None:
    """One source with a wrong clock: every span of the service is stamped an hour (a day)
    ahead. The evaluations, on their own clock, still count and roll the regression back."""
    def skewed() -> Iterator[tuple[float, Event]]:
        for arrival, event in as_telemetry(HALLUCINATING.events(), 5 * MINUTE):
            if SLOW.isdisjoint(event.metrics):
                event = dataclasses.replace(event, ts=event.ts + ahead)
            yield arrival, event

    rollbacks, rejected = run(POLICY, skewed())
    assert rejected == []
    assert [d.evidence["metric"] for _a, d in rollbacks] == ["hallucination"]


def test_one_evaluation_stamped_far_ahead_is_parked_in_its_lane() -> None:
    """One evaluation stamped a day ahead moves neither clock: it is parked, nothing is too
    late, and the regression is rolled back as without it."""
    def rogue() -> Iterator[tuple[float, Event]]:
        for i, (arrival, event) in enumerate(as_telemetry(HALLUCINATING.events(), 5 * MINUTE)):
            if i == 4000:
                yield arrival, Event("rogue", event.ts + 86_400.0, "chat", event.release, "",
                                     {"hallucination": 1.0})
            yield arrival, event

    plain, _ = run(POLICY, as_telemetry(HALLUCINATING.events(), 5 * MINUTE))
    rollbacks, rejected = run(POLICY, rogue())
    assert rejected == []
    assert [d.ts for _a, d in rollbacks] == [d.ts for _a, d in plain]


def test_a_regression_in_both_lanes_is_rolled_back_once() -> None:
    """Latency and hallucination regress together: the fast lane rolls back, and the
    evaluation lane, on its later clock, does not roll the same candidate back again."""
    both = dataclasses.replace(SLOWER, also=("hallucination",))
    rollbacks, _ = run(POLICY, as_telemetry(both.events(), 5 * MINUTE))
    assert len(rollbacks) == 1


def test_the_state_with_its_lane_round_trips_and_decides_the_same() -> None:
    """A monitor written to bytes and read back mid-stream (a checkpoint) decides exactly as
    one that never stopped, its evaluation lane included."""
    stream = list(as_telemetry(HALLUCINATING.events(), 5 * MINUTE))
    whole, cut = ServiceMonitor("chat", POLICY), ServiceMonitor("chat", POLICY)
    expected = [d for _a, e in stream for d in whole.observe(e)] + whole.flush()
    half = len(stream) // 2
    got = [d for _a, e in stream[:half] for d in cut.observe(e)]
    data = cut.to_bytes()
    assert data[4] == 5 and cut.evaluations is not None
    cut = ServiceMonitor.from_bytes(data, POLICY)
    assert cut.to_bytes() == data
    got += [d for _a, e in stream[half:] for d in cut.observe(e)] + cut.flush()
    assert got == expected
    assert sum(d.action == "rollback" for d in got) == 1


def test_a_state_without_evaluations_stays_as_it_was_written() -> None:
    """A service whose events carry every metric at once has no lane: its state is the
    version-4 state it always was."""
    monitor = ServiceMonitor("chat", POLICY)
    for event in list(HALLUCINATING.events())[:500]:
        monitor.observe(event)
    assert monitor.evaluations is None and monitor.to_bytes()[4] == 4


def block(columns: dict[str, list[float | None]]) -> Block:
    n = len(next(iter(columns.values())))
    dense = {k: [float(v) for v in c if v is not None] for k, c in columns.items()}
    return Block("chat", "v1", "", [f"e{i}" for i in range(n)], [float(i) for i in range(n)],
                 columns, dense, frozenset(k for k, d in dense.items() if len(d) == n))


@pytest.mark.parametrize("columns,fast_rows,slow_rows", [
    ({"latency_ms": [1.0, 2.0]}, [0, 1], None),
    ({"hallucination": [0.0, 1.0]}, None, [0, 1]),
    ({"latency_ms": [1.0, 2.0], "hallucination": [0.0, 1.0]}, [0, 1], None),
    ({"latency_ms": [1.0, None, None], "hallucination": [None, 1.0, None]}, [0, 2], [1]),
    ({"latency_ms": [None, None], "hallucination": [1.0, 0.0]}, None, [0, 1]),
    ({"hallucination": [None, 1.0], "accuracy": [0.5, None]}, None, [0, 1]),
])
def test_a_block_is_split_by_event_an_evaluation_result_has_only_evaluation_metrics(
        columns: dict[str, list[float | None]], fast_rows: list[int] | None,
        slow_rows: list[int] | None) -> None:
    """Each event of a block goes to one lane: the evaluation lane when all its metrics are
    evaluation metrics, else the fast lane; an event with no metric stays in the fast one."""
    fast, slow = split_block(block(columns), SLOW)
    assert [int(t) for t in fast[0].ts] == fast_rows if fast else fast_rows is None
    assert [int(t) for t in slow[0].ts] == slow_rows if slow else slow_rows is None
    if slow:
        assert SLOW.issuperset(k for k, c in slow[0].columns.items()
                               if any(v is not None for v in c))


def test_an_evaluation_too_late_for_its_lane_is_a_dead_letter_naming_its_bound() -> None:
    """Beyond the evaluations' own bound (30 minutes by default) a result is too late, and
    the dead letter says which bound it missed."""
    monitors = MonitorSet(POLICY)
    monitors.feed([(Event("a", 10_000.0, "chat", "v1", "", {"hallucination": 0.0}), {}, None)])
    fed = monitors.feed([(Event("b", 10_000.0 - 1900, "chat", "v1", "", {"accuracy": 1.0}),
                          {"raw": 1}, None)])
    assert [(r.reason, r.raw) for r in fed.rejected] == [("too_late", {"raw": 1})]
    assert "1800 s behind chat's newest evaluation results" in fed.rejected[0].detail


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 86_400 * 2), st.floats(0, 60)),
                min_size=1, max_size=200))
def test_spans_never_make_an_evaluation_too_late(
        steps: list[tuple[bool, float, float]]) -> None:
    """Whatever the spans' times (days ahead, jumping about), evaluation results that come in
    their own time order, each within a minute of the last, are never too late."""
    monitor = ServiceMonitor("chat", POLICY)
    t = 1_790_000_000.0
    for i, (is_span, jump, step) in enumerate(steps):
        if is_span:  # (a span may be too late for the spans' clock: not the point here)
            monitor.observe(Event(f"s{i}", t + jump, "chat", "v1", "", {"latency_ms": 5.0}))
            monitor.too_late = []
        else:
            t += step
            monitor.observe(Event(f"e{i}", t, "chat", "v1", "", {"hallucination": 0.0}))
            assert monitor.too_late == [] and not monitor.too_late_evaluations


@pytest.mark.parametrize("section,message", [
    ({"evaluation_lateness_seconds": 120}, "evaluation_lateness_seconds: must be at least"),
    ({"evaluation_metrics": ["nope"]}, "evaluation_metrics: 'nope' is not a metric"),
    ({"evaluation_metrics": "hallucination"}, "evaluation_metrics: must be a list"),
])
def test_the_lane_settings_are_checked(section: dict[str, object], message: str) -> None:
    """A mistake in the lane's settings is refused with the field named."""
    doc = policy_document(POLICY)
    doc["opentelemetry"] = {**doc["opentelemetry"], **section}
    with pytest.raises(ConfigError, match=message):
        policy_from_dict(doc)


def test_a_composite_is_judged_whole_in_one_lane() -> None:
    """A composite with an evaluation metric takes its other members into the evaluation
    lane, so that its members' evidence is weighed on one clock; the default policy's
    quality composite brings complaint there."""
    assert POLICY.opentelemetry.evaluation_metrics == (
        "accuracy", "complaint", "hallucination", "toxicity")
    doc = policy_document(POLICY)
    doc["opentelemetry"]["evaluation_metrics"] = ["accuracy"]
    doc["composites"].append({"name": "slow-and-wrong", "metrics": ["latency_ms", "accuracy"]})
    assert set(policy_from_dict(doc).opentelemetry.evaluation_metrics) == {
        "accuracy", "latency_ms", "hallucination", "complaint"}


def test_the_levels_a_dashboard_draws_include_the_evaluation_lane() -> None:
    """The status page and /metrics show the evaluation metrics' levels from their lane,
    beside the fast ones."""
    from rollguard.detectors.levels import levels

    monitor = ServiceMonitor("chat", POLICY)
    for _arrival, event in as_telemetry(list(HALLUCINATING.events())[:20_000], 5 * MINUTE):
        monitor.observe(event)
    shown = {(level.role, level.metric) for level in levels(monitor)}
    assert {("baseline", "hallucination"), ("baseline", "latency_ms"),
            ("candidate", "accuracy"), ("candidate", "error")} <= shown
    assert len(shown) == len(levels(monitor))


def test_a_long_streak_of_evaluations_too_late_is_one_alert_naming_their_bound() -> None:
    """Judges whose results all come more than their bound late: the one inconclusive alert
    says the service is not judged, with the evaluations' bound."""
    monitors = MonitorSet(POLICY)
    monitors.feed([(Event("a", 10_000.0, "chat", "v1", "", {"hallucination": 0.0}), {}, None)])
    alerts = []
    for i in range(120):
        fed = monitors.feed([(Event(f"late-{i}", 10_000.0 - 1900, "chat", "v1", "",
                                    {"accuracy": 1.0}), {}, None)])
        alerts += fed.decisions
    assert [a.evidence["max_lateness_seconds"] for a in alerts] == [1800.0]


@pytest.mark.parametrize("lanes,passes", [(True, True), (False, False)],
                         ids=["evaluation-lane", "one-clock"])
def test_a_guarded_rollout_step_takes_in_evaluations_fifteen_minutes_late(
        lanes: bool, passes: bool) -> None:
    """A guarded rollout's step needs evidence for every metric that could roll back: with
    the evaluation lane the monitor hands it the evaluations' buckets too (15 minutes late)
    and a healthy candidate's step passes; on one clock they are all too late and the step
    can never pass."""
    from rollguard.detectors.rollout import Ramp, RampAction, gated_metrics
    from rollguard.detectors.rollout_plan import RolloutPlan

    policy = POLICY if lanes else one_clock()
    healthy = Scenario(7, rate=5.0, duration=3000.0)
    monitor = ServiceMonitor("chat", policy)
    monitor.measure_ramp = True
    ramp = Ramp(RolloutPlan(), gated_metrics(policy), policy.evidence_threshold,
                1_790_000_000.0 + healthy.deploy_at)
    actions = set()
    for _arrival, event in as_telemetry(healthy.events(), 15 * MINUTE):
        monitor.observe(event)
        actions |= {ramp.observe_bucket(b).action for b in monitor.drain_ramp()}
    assert (RampAction.ADVANCE in actions) is passes
    assert "hallucination" in gated_metrics(policy)
