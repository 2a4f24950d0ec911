"""The worker's Prometheus metrics, read from a real partition loop fed in memory."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rollguard.base.errors import ConfigError
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.policy import default_policy
from rollguard.streams import metrics_http
from rollguard.streams.gaps import GapGuard
from rollguard.streams.metrics import (
    REJECT_REASONS,
    LoopCollector,
    WorkerMetrics,
    command_outcome,
    decision_action,
)
from rollguard.streams.partition import PartitionLoop

T0 = 1_700_000_000.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def block(release: str, first: int, errors: list[int]) -> dict[str, Any]:
    n = len(errors)
    return {"service": "chat", "release": release,
            "event_id": [f"{release}-{first + i}" for i in range(n)],
            "ts": [T0 + first + i for i in range(n)],
            "metrics": {"error": errors}}


def fed_loop() -> PartitionLoop[int]:
    """Bucket 0 holds r1 (stable, no errors) and r2 (the candidate, 2 errors in 5); a message
    at t=10 s closes it; then a bad message and an event of another service."""
    table: dict[bytes, bytes] = {}
    loop: PartitionLoop[int] = PartitionLoop(default_policy(), b"s", table.get, clock=lambda: T0)
    messages = [[block("r1", 0, [0] * 5)], [block("r2", 5, [1, 1, 0, 0, 0])],
                [block("r1", 10, [0])]]
    for offset, items in enumerate(messages):
        loop.on_message(0, offset, b"chat", orjson.dumps(items), None, 100.0, offset)
    loop.on_message(0, 3, b"chat", b"{not json", None, 100.0, 3)
    other = {**block("r1", 11, [0]), "service": "other"}
    loop.on_message(0, 4, b"chat", orjson.dumps([other]), None, 100.0, 4)
    return loop


def scrape(metrics: WorkerMetrics) -> Samples:
    text = metrics.exposition().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def watched(loop: PartitionLoop[int], ends: dict[int, int | None] | None = None,
            now: float = T0 + 15.0, monotonic: float = 103.0) -> WorkerMetrics:
    metrics = WorkerMetrics()
    metrics.registry.register(LoopCollector(loop, lambda: ends or {}, clock=lambda: now,
                                            monotonic=lambda: monotonic))
    return metrics


def test_events_are_counted_and_rejections_listed_by_every_known_reason() -> None:
    samples = scrape(watched(fed_loop()))
    assert value(samples, "rollguard_events_total", outcome="counted") == 11
    assert value(samples, "rollguard_events_total", outcome="rejected") == 2
    for reason in REJECT_REASONS:
        expected = 1 if reason in ("not_json", "key_mismatch") else 0
        assert value(samples, "rollguard_events_rejected_total", reason=reason) == expected


def test_lag_is_the_end_offset_beyond_what_was_handled_and_checkpoint_age_counts_up() -> None:
    samples = scrape(watched(fed_loop(), ends={0: 12, 1: None}, monotonic=103.0))
    assert value(samples, "rollguard_partition_lag_messages", partition="0") == 7  # 5..11
    assert not [k for k in samples if k[0] == "rollguard_partition_lag_messages"
                and ("partition", "1") in k[1]]
    assert value(samples, "rollguard_checkpoint_age_seconds", partition="0") == 3.0


def test_each_service_shows_its_event_time_lag_and_candidate_against_baseline() -> None:
    samples = scrape(watched(fed_loop(), now=T0 + 15.0))
    assert value(samples, "rollguard_event_time_lag_seconds", service="chat") == 5.0
    cand = value(samples, "rollguard_metric_value", service="chat", release="r2",
                 role="candidate", metric="error")
    base = value(samples, "rollguard_metric_value", service="chat", release="r1",
                 role="baseline", metric="error")
    assert (cand, base) == pytest.approx((0.4, 0.0))
    tolerance = default_policy().metrics["error"].tolerance
    assert value(samples, "rollguard_metric_tolerance", service="chat",
                 metric="error") == pytest.approx(tolerance)
    assert value(samples, "rollguard_metric_limit", service="chat",
                 metric="error") == pytest.approx(base + tolerance)


def decision(action: str, verdict: str = "sustained", requires_approval: bool = False,
             dry_run: bool = False) -> Decision:
    return Decision(T0, "chat", "r2", DecisionAction(action), Verdict(verdict), "r1", [],
                    "worse", requires_approval=requires_approval, dry_run=dry_run)


@pytest.mark.parametrize(("made", "action"), [
    (decision("rollback"), "rollback"),
    (decision("rollback", requires_approval=True), "approve"),
    (decision("rollback", dry_run=True), "dry-run"),
    (decision("alert", "transient"), "alert"),
])
def test_a_decision_is_counted_by_service_verdict_and_the_policy_action(
        made: Decision, action: str) -> None:
    assert decision_action(made) == action
    metrics = WorkerMetrics()
    metrics.on_decisions([made, made])
    samples = scrape(metrics)
    assert value(samples, "rollguard_decisions_total", service="chat",
                 verdict=str(made.verdict), action=action) == 2


@pytest.mark.parametrize(("record", "outcome"), [
    ({"type": "outcome", "status": "applied"}, "applied"),
    ({"type": "outcome", "status": "conflict"}, "conflict"),
    ({"type": "outcome", "status": "refused"}, "refused"),
    ({"type": "approval-needed"}, "awaiting_approval"),
    ({"type": "approval-recorded"}, "awaiting_approval"),
    ({"type": "command-refused"}, "refused"),
])
def test_a_command_is_counted_by_its_outcome(record: dict[str, Any], outcome: str) -> None:
    assert command_outcome(record) == outcome


def test_an_applied_command_times_the_flip_from_its_issue() -> None:
    metrics = WorkerMetrics()
    applied = {"type": "outcome", "status": "applied", "at": T0 + 0.3, "issued_at": T0,
               "approved_by": None}
    approved = {**applied, "at": T0 + 120.0, "approved_by": "alice"}
    waiting = {"type": "approval-needed", "at": T0}
    metrics.on_actuated(orjson.dumps(r) for r in (applied, approved, waiting))
    samples = scrape(metrics)
    assert value(samples, "rollguard_commands_total", outcome="applied") == 2
    assert value(samples, "rollguard_commands_total", outcome="awaiting_approval") == 1
    assert value(samples, "rollguard_commands_total", outcome="conflict") == 0
    assert value(samples, "rollguard_decision_to_flip_seconds_count", approval="none") == 1
    assert value(samples, "rollguard_decision_to_flip_seconds_sum",
                 approval="none") == pytest.approx(0.3)
    assert value(samples, "rollguard_decision_to_flip_seconds_bucket", approval="none",
                 le="0.5") == 1
    assert value(samples, "rollguard_decision_to_flip_seconds_bucket", approval="approved",
                 le="60.0") == 0


def test_gaps_taken_as_absent_are_counted_by_topic_from_zero() -> None:
    """The monitor's guard (events and by-service topics) and the actuator's (commands) are
    read at each scrape; each topic is listed at zero until a gap of it is accepted."""
    loop = fed_loop()
    commands = GapGuard(where=lambda partition: ("rollguard.commands", partition))
    commands.accepted["rollguard.commands"] = 0
    metrics = WorkerMetrics()
    metrics.watch_gaps(loop.guard, commands)
    name = "rollguard_offset_gaps_accepted_total"
    assert {topic: value(scrape(metrics), name, topic=topic)
            for topic in ("events", "by-service", "rollguard.commands")} == dict.fromkeys(
        ("events", "by-service", "rollguard.commands"), 0)
    commands.admit(0, offset=5, last_applied=1, now=0.0)
    commands.due(1.0, starts={0: 5})
    assert value(scrape(metrics), name, topic="rollguard.commands") == 1


async def test_metrics_are_served_over_http_in_the_text_format() -> None:
    metrics = watched(fed_loop())
    sock = metrics_http.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    runner = await metrics_http.serve(sock, metrics)
    try:
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{port}/metrics") as response:
            body = await response.text()
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    finally:
        await runner.cleanup()
    assert 'rollguard_events_total{outcome="counted"} 11.0' in body


async def test_probes_say_alive_always_and_ready_only_once_the_worker_is() -> None:
    """/healthz answers while the loop runs; /readyz answers 503 with the reason until
    ``not_ready`` returns None, then 200."""
    reasons: list[str | None] = ["the worker has not joined its Kafka consumer group yet"]
    sock = metrics_http.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runner = await metrics_http.serve(sock, WorkerMetrics(), lambda: reasons[-1])
    answers = []
    try:
        async with aiohttp.ClientSession() as session:
            for reason in (reasons[0], None):
                reasons.append(reason)
                for path in ("/healthz", "/readyz"):
                    async with session.get(base + path) as response:
                        answers.append((path, response.status, await response.text()))
    finally:
        await runner.cleanup()
    assert answers == [
        ("/healthz", 200, "ok\n"),
        ("/readyz", 503, f"not ready: {reasons[0]}\n"),
        ("/healthz", 200, "ok\n"),
        ("/readyz", 200, "ready\n"),
    ]


def test_an_address_in_use_is_refused_naming_the_variable() -> None:
    with (socket.create_server(("127.0.0.1", 0)) as taken,
          pytest.raises(ConfigError, match="ROLLGUARD_METRICS_ADDR")):
        metrics_http.bind(taken.getsockname()[:2])


def test_the_grafana_dashboard_draws_only_metrics_the_worker_exports() -> None:
    """docs/grafana-dashboard.json stays in step with the names above."""
    path = Path(__file__).parents[3] / "docs" / "grafana-dashboard.json"
    dashboard = json.loads(path.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used = {name for expr in exprs for name in re.findall(r"rollguard_[a-z_]+", expr)}
    metrics = watched(fed_loop(), ends={0: 12})
    metrics.on_decisions([decision("rollback")])
    exported = {name for name, _ in scrape(metrics)}
    assert used and used <= exported, used - exported


def test_a_rollout_under_way_shows_its_step_share_and_state() -> None:
    """A monitor with a rollout run serves its share, its step and its state (a pin: held)."""
    from rollguard.detectors.rollout_plan import RolloutPlan
    from rollguard.detectors.rollout_run import RolloutRun

    loop = fed_loop()
    monitor = loop.monitors.get("chat")
    assert monitor is not None
    run = RolloutRun.begin("c1", RolloutPlan(steps=(5.0, 100.0)), default_policy(), T0, "c1")
    monitor.rollout, run.held = run, "pinned"
    samples = scrape(watched(loop))
    key = {"service": "chat", "release": "r2"}
    assert value(samples, "rollguard_rollout_percent", **key) == 5.0
    assert value(samples, "rollguard_rollout_step", **key) == 1.0
    assert value(samples, "rollguard_rollout_state", state="held", **key) == 1.0
