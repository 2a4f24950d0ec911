"""The service monitor: versioned state that round-trips exactly, dedupe, roles, bounds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.scenarios import Scenario
from rollguard.base.errors import StateError
from rollguard.detectors.codec import MAGIC
from rollguard.detectors.events import Event
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.policy import Policy, default_policy
from tests.support.streams import busy_stream, dry_run_policy


def run(events: tuple[Event, ...] | list[Event], policy: Policy,
        splits: frozenset[int] = frozenset()) -> tuple[list[dict], bytes]:
    """Decisions (as dicts) and final state; the state round-trips at every split index."""
    monitor = ServiceMonitor("chat", policy)
    decisions: list[dict] = []
    for i, event in enumerate(events):
        if i in splits:
            monitor = ServiceMonitor.from_bytes(monitor.to_bytes(), policy)
        decisions += [d.to_dict() for d in monitor.observe(event)]
    decisions += [d.to_dict() for d in monitor.flush()]
    return decisions, monitor.to_bytes()


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2), cuts=st.lists(st.floats(0, 1), min_size=1, max_size=6))
def test_state_round_trip_at_random_points_gives_the_same_decisions(seed: int,
                                                                     cuts: list[float]) -> None:
    """Serialising and restoring the state anywhere in a stream changes no later decision."""
    events = busy_stream(seed)
    splits = frozenset(int(c * (len(events) - 1)) for c in cuts)
    straight, state = run(events, dry_run_policy())
    restored, restored_state = run(events, dry_run_policy(), splits)
    assert straight, "the stream must produce decisions for the comparison to mean anything"
    assert restored == straight
    assert restored_state == state


def test_duplicated_events_are_counted_once() -> None:
    """Feeding every event twice gives exactly the decisions of feeding it once."""
    events = busy_stream(0)
    doubled = [e for event in events for e in (event, event)]
    once, _ = run(events, dry_run_policy())
    twice, _ = run(doubled, dry_run_policy())
    assert twice == once


def test_no_second_rollback_for_a_candidate_even_across_a_round_trip() -> None:
    """After a rollback decision the candidate gets no other one, restored or not."""
    scenario = Scenario(1, metric="error", magnitude=6.0, duration=2400)
    events = list(scenario.events())
    decisions, _ = run(events, default_policy(), frozenset(range(0, len(events), 997)))
    rollbacks = [d for d in decisions if d["action"] == "rollback"]
    assert len(rollbacks) == 1
    assert rollbacks[0]["release"] == "candidate-2" and rollbacks[0]["to"] == "stable-1"
    assert not [d for d in decisions if d["ts"] > rollbacks[0]["ts"]]


def test_state_stays_a_few_kilobytes_however_long_the_stream() -> None:
    """Bytes per service stay bounded: after 2 hours they are what they were after 30 min.
    At about 25 events/s the dedupe memory holds the ids of the last 310 s (7,700 ids)."""
    monitor = ServiceMonitor("chat", default_policy())
    sizes: dict[int, int] = {}
    for event in Scenario(2, rate=5.0, duration=7200).events():
        monitor.observe(event)
        minute = int((event.ts - 1_790_000_000) // 60)
        sizes.setdefault(minute, len(monitor.to_bytes()) if minute in (30, 119) else 0)
    assert sizes[119] < 32_000
    assert sizes[119] < 1.5 * sizes[30]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "bad magic"),
        (b"PICKLE" + b"\x00" * 20, "bad magic"),
        (MAGIC + bytes([9]) + b"{}", "version 9 is not readable"),
        (MAGIC + bytes([1]) + b"not zlib", "corrupt"),
    ],
)
def test_unreadable_state_is_refused_clearly(data: bytes, message: str) -> None:
    """Corrupt bytes or another schema version raise StateError with the reason."""
    with pytest.raises(StateError, match=message):
        ServiceMonitor.from_bytes(data, default_policy())


def _event(i: int, release: str, ts: float, **metrics: float) -> Event:
    return Event(f"id-{i}", ts, "chat", release, "", metrics)


def test_roles_are_inferred_first_release_stable_later_one_candidate() -> None:
    """Without set_roles, the first release is the stable one and a later one the candidate."""
    monitor = ServiceMonitor("chat", default_policy())
    monitor.observe(_event(1, "r1", 1_790_000_000.0, error=0.0))
    monitor.observe(_event(2, "r2", 1_790_000_001.0, error=0.0))
    assert monitor.stable == "r1" and monitor.candidate is not None
    assert monitor.candidate.release == "r2"


def test_explicit_roles_win_over_inference() -> None:
    """After set_roles, a new release in the events does not become the candidate."""
    monitor = ServiceMonitor("chat", default_policy())
    monitor.set_roles("r2", "r3")
    monitor.observe(_event(1, "r1", 1_790_000_000.0, error=0.0))
    assert monitor.stable == "r2" and monitor.candidate is not None
    assert monitor.candidate.release == "r3"
    monitor.set_roles("r2", None)
    assert monitor.candidate is None


def test_events_far_too_late_are_dropped_and_counted() -> None:
    """An event more than 5 minutes behind the newest bucket is not counted in a statistic."""
    monitor = ServiceMonitor("chat", default_policy())
    monitor.observe(_event(1, "r1", 1_790_001_000.0, error=0.0))
    monitor.observe(_event(2, "r1", 1_790_000_000.0, error=1.0))
    monitor.observe(_event(3, "r1", 1_790_000_998.0, error=1.0))
    assert monitor.counts == {"duplicates": 0, "late": 1, "too_late": 1, "dedupe_evicted": 0}


def test_returned_decision_lists_are_the_callers_to_keep() -> None:
    """A caller may extend the list observe returns without changing later results."""
    monitor = ServiceMonitor("chat", default_policy())
    first = monitor.observe(_event(1, "r1", 1_790_000_000.0, error=0.0))
    first.append("not a decision")  # type: ignore[arg-type]
    assert monitor.observe(_event(2, "r1", 1_790_000_001.0, error=0.0)) == []


def _inconclusive(decisions: list) -> list:
    return [d for d in decisions if d.verdict == "inconclusive"]


def test_a_small_canary_is_called_inconclusive_only_after_the_documented_wait() -> None:
    """Roles set before any event (the worker's way): the wait starts at the first bucket
    with events, not at bucket -1, so a thin canary is inconclusive after 30 min, not at once."""
    policy = default_policy()
    monitor = ServiceMonitor("chat", policy)
    monitor.set_roles("r1", "r2")
    start, found, i = 1_790_000_000.0, [], 0
    for second in range(0, 2400, 5):
        for release in ("r1", "r1", "r2") if second % 60 == 0 else ("r1", "r1"):
            i += 1
            found += monitor.observe(_event(i, release, start + second, error=0.0))
        if second == 60:
            assert _inconclusive(found) == []
    thin = _inconclusive(found)
    assert thin, "a canary with too few samples is never called inconclusive"
    waited = thin[0].ts - start
    assert policy.inconclusive_after_seconds <= waited <= policy.inconclusive_after_seconds + 60
    assert "after 30 min" in thin[0].reason
