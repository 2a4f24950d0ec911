"""The gap guard turns a lossy, repeating delivery into each offset applied once, in order."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from rollguard.streams.gaps import Admit, GapGuard


def deliver(log: list[int], dropped: set[int], duplicated: set[int]) -> list[int]:
    """Run a consumer that drops and repeats some fetched messages and honours seeks.

    New traffic keeps arriving (one message a second once the queue is empty), as on a live
    topic; returns the offsets applied from the original log.
    """
    guard = GapGuard(retry_s=1.0, max_retries=3)
    log = list(log)
    end = log[-1]
    queue: deque[int] = deque()
    for offset in log:
        if offset not in dropped:
            queue.append(offset)
        if offset in duplicated:
            queue.append(offset)
    applied: list[int] = []
    last: int | None = log[0] - 1
    now = 0.0
    for _ in range(500 * len(log) + 1000):
        if last is not None and last >= end:
            break
        if not queue:
            log.append(log[-1] + 1)  # live traffic
            queue.append(log[-1])
            now += 1.0
        offset = queue.popleft()
        now += 0.01
        verdict = guard.admit(0, offset, last, now)
        seeks = [verdict.seek_to] if verdict.seek_to is not None else []
        seeks += [target for _, target in guard.due(now)]
        for target in seeks:
            # Already-fetched messages still arrive, then the log is read again from there.
            queue.extend(o for o in log if o >= target)
        if verdict.process:
            applied.append(offset)
            last = offset
    return [o for o in applied if o <= end]


@settings(max_examples=300)
@given(st.data())
def test_drops_and_redeliveries_still_apply_every_offset_once_in_order(data) -> None:
    """Whatever is dropped or repeated, every offset of the log is applied once, in order.

    (A drop shows only when a later message arrives; the model keeps live traffic coming.)
    """
    size = data.draw(st.integers(2, 60))
    log = list(range(100, 100 + size))
    dropped = data.draw(st.sets(st.sampled_from(log[1:])))
    duplicated = data.draw(st.sets(st.sampled_from(log)))
    assert deliver(log, dropped, duplicated) == log


@settings(max_examples=200)
@given(st.data())
def test_real_gaps_in_the_log_are_accepted_not_waited_for_forever(data) -> None:
    """Offsets that do not exist (transaction markers) are skipped; the rest applied in order."""
    full = list(range(0, data.draw(st.integers(3, 60))))
    holes = data.draw(st.sets(st.sampled_from(full[1:-1])))
    log = [o for o in full if o not in holes]
    assert deliver(log, set(), set()) == log


def test_a_seek_is_issued_once_per_gap_by_admit() -> None:
    """Messages still queued after the seek do not trigger more seeks; only due() repeats."""
    guard = GapGuard()
    first = guard.admit(3, offset=12, last_applied=9, now=0.0)
    later = [guard.admit(3, offset=o, last_applied=9, now=0.1) for o in (13, 14)]
    assert first == Admit(False, seek_to=10)
    assert later == [Admit(False), Admit(False)] and guard.seeks == 1


def test_missing_offsets_are_sought_again_then_given_up() -> None:
    """The seek repeats every retry_s; after max_retries reading resumes at the gap's end."""
    guard = GapGuard(retry_s=1.0, max_retries=2)
    guard.admit(0, offset=50, last_applied=40, now=0.0)
    assert guard.admit(0, offset=51, last_applied=40, now=0.5) == Admit(False)
    assert [guard.due(t) for t in (0.9, 1.0, 2.0, 3.0)] == [[], [(0, 41)], [(0, 41)], [(0, 50)]]
    assert guard.admit(0, offset=50, last_applied=40, now=3.1) == Admit(True)
    assert guard.accepted_gaps == 1 and guard.due(10.0) == []


def test_partitions_are_guarded_independently() -> None:
    """A gap on one partition does not hold back another."""
    guard = GapGuard()
    assert guard.admit(0, offset=5, last_applied=2, now=0.0).seek_to == 3
    assert guard.admit(1, offset=3, last_applied=2, now=0.0) == Admit(True)
