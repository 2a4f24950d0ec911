"""Event time cannot be abused: a date far ahead is refused, a date far behind is reported."""

from __future__ import annotations

from typing import Any

import orjson

from bench.scenarios import Scenario
from rollguard.detectors.events import Event
from rollguard.detectors.monitors import LATE_STREAK_ALERT, MonitorSet
from rollguard.detectors.policy import default_policy
from rollguard.streams.partition import PartitionLoop
from rollguard.streams.wire import encode_batch, read_message

T0 = 1_790_000_000.0
POLICY = default_policy()


def _event(i: int, ts: float, error: float = 0.0) -> dict[str, Any]:
    return {"event_id": f"e{i}", "ts": ts, "service": "chat", "release": "r1",
            "metrics": {"error": error}}


def _feed(monitors: MonitorSet, events: list[dict[str, Any]], now: float | None = None
          ) -> tuple[int, list[str], list[Any]]:
    fed = monitors.feed(read_message(encode_batch(events)), "chat", now=now)
    return fed.events, [r.reason for r in fed.rejected], fed.decisions


def test_an_event_dated_beyond_the_skew_is_a_dead_letter() -> None:
    monitors = MonitorSet(POLICY)
    ahead = T0 + POLICY.max_future_skew_seconds
    assert _feed(monitors, [_event(1, ahead + 1), _event(2, ahead)], now=T0)[:2] == (
        1, ["ts_in_future"])


def test_a_block_with_one_future_event_loses_that_event_alone() -> None:
    monitors = MonitorSet(POLICY)
    block = {"service": "chat", "release": "r1", "event_id": ["a", "b", "c"],
             "ts": [T0, T0 + 365 * 86400, T0 + 1], "metrics": {"error": [0, 1, None]}}
    fed = monitors.feed(read_message(orjson.dumps([block])), "chat", now=T0)
    assert (fed.events, [r.reason for r in fed.rejected]) == (2, ["ts_in_future"])
    assert fed.rejected[0].raw == {"event_id": "b", "ts": T0 + 365 * 86400, "service": "chat",
                                   "release": "r1", "metrics": {"error": 1}}


def test_without_a_clock_a_replay_does_not_judge_dates_ahead() -> None:
    """A recording has no "now" to be ahead of: replay feeds without one."""
    assert _feed(MonitorSet(POLICY), [_event(1, T0 + 365 * 86400)])[:2] == (1, [])


def test_an_event_too_late_to_count_is_a_dead_letter_and_counted() -> None:
    monitors = MonitorSet(POLICY)
    _feed(monitors, [_event(1, T0 + 1000)])
    late = T0 + 1000 - POLICY.max_lateness_seconds - 2 * POLICY.bucket_seconds
    assert _feed(monitors, [_event(2, late), _event(3, T0 + 999)])[:2] == (1, ["too_late"])
    monitor = monitors.get("chat")
    assert monitor is not None and monitor.counts["too_late"] == 1


def test_a_service_whose_events_all_come_too_late_raises_one_alert() -> None:
    monitors = MonitorSet(POLICY)
    _feed(monitors, [_event(0, T0 + 1000)])
    alerts = []
    for i in range(1, 3 * LATE_STREAK_ALERT, 10):
        counted, reasons, decisions = _feed(monitors, [_event(i + k, T0) for k in range(10)])
        assert (counted, reasons) == (0, ["too_late"] * 10)
        alerts += decisions
    [alert] = alerts
    assert (alert.action, alert.verdict) == ("alert", "inconclusive")
    assert "not being judged" in alert.reason
    assert _feed(monitors, [_event(10_000, T0 + 1000)])[0] == 1  # the streak ends ...
    more = [d for i in range(LATE_STREAK_ALERT)
            for d in _feed(monitors, [_event(20_000 + i, T0)])[2]]
    assert len(more) == 1  # ... and a new one alerts again


def _rollbacks(future_at: int | None) -> list[Any]:
    """The rollback decisions of a regressing canary fed through the partition loop, one
    message a second, with the wall clock at the events' time; ``future_at``: a message
    before the ``future_at``-th holds an event dated a year ahead."""
    scenario = Scenario(7, metric="error", magnitude=3.0, onset=120, duration=1800)
    clock = [T0]
    table: dict[bytes, bytes] = {}
    loop: PartitionLoop[int] = PartitionLoop(POLICY, b"secret", table.get,
                                             clock=lambda: clock[0])
    by_second: dict[int, list[Event]] = {}
    for event in scenario.events():
        by_second.setdefault(int(event.ts), []).append(event)
    decisions = []
    for offset, (second, events) in enumerate(sorted(by_second.items())):
        batch = [{"event_id": e.event_id, "ts": e.ts, "service": e.service,
                  "release": e.release, "metrics": e.metrics} for e in events]
        if offset == future_at:
            batch.append({**batch[0], "event_id": "from-the-future",
                          "ts": second + 365 * 86400.0})
        clock[0] = float(second)
        out = loop.on_message(0, offset, b"chat", encode_batch(batch), None, float(offset),
                              offset)
        decisions += out.decisions
        if offset == future_at:
            assert [orjson.loads(d)["reason"] for d in out.dead] == ["ts_in_future"]
    return [d for d in decisions if d.action == "rollback"]


def test_an_event_dated_a_year_ahead_does_not_blind_the_service() -> None:
    """A regression after a future-dated event is still rolled back, as without it."""
    assert len(_rollbacks(None)) == 1
    assert len(_rollbacks(future_at=30)) == 1
