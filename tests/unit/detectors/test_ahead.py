"""One clock must not blind a service: an event dated far ahead of its service is parked
until time reaches it (detectors/ahead.py), never moving the service's time by itself."""

from __future__ import annotations

import dataclasses

import pytest

from bench.scenarios import Scenario
from rollguard.detectors.blocks import Block
from rollguard.detectors.events import Event
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.monitors import MonitorSet
from rollguard.detectors.policy import default_policy

REGRESSION = Scenario(3, rate=2.0, metric="error", magnitude=4.0, onset=300.0, duration=2400.0)


def with_rogue(events: list[Event], at: int, ahead: float) -> list[Event]:
    rogue = dataclasses.replace(events[at], event_id="rogue", ts=events[at].ts + ahead)
    return [*events[:at], rogue, *events[at:]]


@pytest.mark.parametrize("lag", [300.0, 900.0, 1500.0])
def test_one_event_at_the_clocks_now_in_a_stream_that_runs_behind_does_not_blind_it(
        lag: float) -> None:
    """The stream runs `lag` seconds behind the worker's clock; one event stamped "now"
    arrives in the middle of its regression. It is rolled back, and nothing but that one
    event is set aside."""
    events = list(REGRESSION.events())
    middle = next(i for i, e in enumerate(events) if e.ts > events[0].ts + 600 + 360)
    monitors = MonitorSet(default_policy())
    rejected, rollbacks = [], []
    for event in with_rogue(events, middle, lag):
        fed = monitors.feed([(event, None, None)], now=event.ts + (0 if event.event_id == "rogue"
                                                                   else lag))
        rejected += fed.rejected
        rollbacks += [d for d in fed.decisions if d.action == "rollback"]
    assert rollbacks, "the regression must be rolled back"
    assert [r.reason for r in rejected] == []


@pytest.mark.parametrize("ahead", [300.0, 3600.0, 86_400.0])
@pytest.mark.parametrize("as_block", [False, True])
def test_an_event_far_ahead_of_its_service_waits_for_time_to_reach_it(ahead: float,
                                                                      as_block: bool) -> None:
    """Replayed (no clock): the same with an event 5 minutes, an hour or a day ahead, alone
    or inside a block. No event is too late, the regression is rolled back at the same time
    as without the rogue event."""
    events = list(REGRESSION.events())
    policy = default_policy()

    def run(stream: list[Event]) -> tuple[list[float], int]:
        monitor = ServiceMonitor("chat", policy)
        decided = []
        for event in stream:
            if as_block and event.event_id == "rogue":
                block = Block("chat", event.release, "", [event.event_id], [event.ts],
                              {k: [v] for k, v in event.metrics.items()}, {}, frozenset())
                out = monitor.observe_block(block)
            else:
                out = monitor.observe(event)
            decided += [d.ts for d in out if d.action == "rollback"]
        decided += [d.ts for d in monitor.flush() if d.action == "rollback"]
        return decided, monitor.counts["too_late"]

    plain, _ = run(events)
    rogue, too_late = run(with_rogue(events, len(events) // 2, ahead))
    assert too_late == 0
    assert rogue[:1] == plain[:1] and plain


def test_a_service_that_resumes_after_a_gap_moves_on_after_a_few_events() -> None:
    """A real jump of time (a producer down for 20 minutes): the events after the gap are
    all ahead; after three in a row the service's time moves, none is lost."""
    events = list(REGRESSION.events())
    gap_at = len(events) // 3
    later = [dataclasses.replace(e, ts=e.ts + 1200.0) for e in events[gap_at:]]
    monitor = ServiceMonitor("chat", default_policy())
    for event in [*events[:gap_at], *later]:
        monitor.observe(event)
    assert monitor.counts["too_late"] == 0
    assert int(later[-1].ts // 10) == monitor._bucket


def test_parked_events_survive_a_state_round_trip() -> None:
    events = list(REGRESSION.events())
    stream = with_rogue(with_rogue(events, 4000, 3600.0), 5000, 7200.0)
    policy = default_policy()
    straight, restored = ServiceMonitor("chat", policy), ServiceMonitor("chat", policy)
    a, b = [], []
    for i, event in enumerate(stream):
        if i % 997 == 0:
            restored = ServiceMonitor.from_bytes(restored.to_bytes(), policy)
        a += [d.to_dict() for d in straight.observe(event)]
        b += [d.to_dict() for d in restored.observe(event)]
    assert a == b and any(d["action"] == "rollback" for d in a)
    assert restored.to_bytes() == straight.to_bytes()
