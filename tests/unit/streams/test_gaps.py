"""The gap guard turns a lossy, repeating delivery into each offset applied once, in order."""

from __future__ import annotations

import logging
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollguard.streams.gaps import Admit, GapGuard


def deliver(log: list[int], dropped: set[int], duplicated: set[int]) -> list[int]:
    """Run a consumer that drops and repeats some fetched messages and honours seeks.

    New traffic keeps arriving (one message a second once the queue is empty), as on a live
    topic; returns the offsets applied from the original log. Checks on the way that no
    message the guard lets be acknowledged lies beyond the last offset applied.
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
        # What may be acknowledged is never beyond what was applied: a message skipped
        # for a gap (``later``) is acknowledged when it comes again.
        assert verdict.later or (last is not None and offset <= last), (offset, last)
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
    assert first == Admit(False, seek_to=10, later=True)
    assert later == [Admit(False, later=True)] * 2 and guard.seeks == 1


def test_missing_offsets_are_sought_again_then_given_up() -> None:
    """The seek repeats every retry_s; after max_retries reading resumes at the gap's end."""
    guard = GapGuard(retry_s=1.0, max_retries=2)
    guard.admit(0, offset=50, last_applied=40, now=0.0)
    assert guard.admit(0, offset=51, last_applied=40, now=0.5) == Admit(False, later=True)
    assert [guard.due(t) for t in (0.9, 1.0, 2.0, 3.0)] == [[], [(0, 41)], [(0, 41)], [(0, 50)]]
    assert guard.admit(0, offset=50, last_applied=40, now=3.1) == Admit(True)
    assert guard.accepted_gaps == 1 and guard.due(10.0) == []


def test_by_default_missing_offsets_are_waited_for_30_seconds() -> None:
    """Above the log start a missing message may just be slow (a loaded machine): the guard
    seeks again every second for 30 s before it takes the offsets as absent."""
    guard = GapGuard()
    guard.admit(0, offset=9, last_applied=4, now=0.0)
    assert [guard.due(float(t)) for t in range(1, 31)] == [[(0, 5)]] * 30
    assert guard.accepted_gaps == 0
    assert guard.due(31.0) == [(0, 9)] and guard.accepted_gaps == 1


@pytest.mark.parametrize(("start", "seek", "then"), [
    (45, 45, (45, True)),  # 41..44 deleted: 45..49 may exist, read from 45
    (50, 50, (50, True)),  # 41..49 deleted: go on at the message that revealed the gap
    (60, 60, (60, True)),  # that one deleted too: go on at the log start
])
def test_missing_offsets_below_the_log_start_are_a_real_gap_at_the_first_retry(
        start: int, seek: int, then: tuple[int, bool]) -> None:
    """Offsets below the partition's log start offset were deleted (retention): no more
    retries for them; the offsets from the log start on are expected as any others."""
    guard = GapGuard(retry_s=1.0)
    guard.admit(0, offset=50, last_applied=40, now=0.0)
    assert guard.retrying(0.5) == [] and guard.retrying(1.0) == [0]
    assert guard.due(1.0, starts={0: start}) == [(0, seek)]
    assert guard.accepted_gaps == 1
    offset, process = then
    assert guard.admit(0, offset=offset, last_applied=40, now=1.1).process is process
    assert guard.due(5.0, starts={0: start}) == [] and guard.accepted_gaps == 1


def test_a_log_start_at_or_below_the_missing_offset_changes_nothing() -> None:
    guard = GapGuard(retry_s=1.0)
    guard.admit(0, offset=50, last_applied=40, now=0.0)
    assert guard.due(1.0, starts={0: 41}) == [(0, 41)]
    assert guard.due(2.0, starts={0: 0}) == [(0, 41)] and guard.accepted_gaps == 0


def test_offsets_sought_from_the_log_start_are_waited_for_again() -> None:
    """After offsets below the log start are taken as absent, the ones from it up to the
    message that revealed the gap get the full retries (they may exist); the gap's end
    slow to come again is sought again, not counted as a second gap."""
    guard = GapGuard(retry_s=1.0, max_retries=2)
    guard.admit(0, offset=50, last_applied=40, now=0.0)
    assert guard.due(1.0, starts={0: 45}) == [(0, 45)]
    assert [guard.due(t) for t in (2.0, 3.0, 4.0, 5.0, 6.0)] == [
        [(0, 45)], [(0, 45)], [(0, 50)], [(0, 50)], [(0, 50)]]
    assert guard.accepted_gaps == 2, "41..44 deleted, 45..49 never came"
    assert guard.admit(0, offset=50, last_applied=40, now=6.1) == Admit(True)


def test_a_gap_taken_as_real_is_a_warning_naming_topic_partition_and_offsets(
        caplog: pytest.LogCaptureFixture) -> None:
    """Each gap accepted is one warning and counts for its topic (as ``where`` names the
    guard's partitions), whichever way it was found real."""
    guard = GapGuard(retry_s=1.0, max_retries=1,
                     where=lambda lane: (("events", "by-service")[lane >= 100], lane % 100))
    guard.admit(103, offset=20, last_applied=9, now=0.0)
    guard.admit(2, offset=7, last_applied=4, now=0.0)
    with caplog.at_level(logging.WARNING, logger="rollguard.streams.gaps"):
        guard.due(1.0, starts={103: 12})  # 10, 11 deleted; 5 sought again
        guard.due(2.0)  # 5..6 never came; 12 sought again
        guard.due(3.0)  # 12..19 never came
    assert [r.getMessage() for r in caplog.records if r.name == "rollguard.streams.gaps"] == [
        "gap guard: topic 'by-service' partition 3: offsets 10..11 taken as absent (below "
        "the partition's log start offset 12: deleted); reading goes on at offset 12",
        "gap guard: topic 'events' partition 2: offsets 5..6 taken as absent (not read "
        "after 2 seeks, one every 1 s); reading goes on at offset 7",
        "gap guard: topic 'by-service' partition 3: offsets 12..19 taken as absent (not "
        "read after 2 seeks, one every 1 s); reading goes on at offset 20",
    ]
    assert guard.accepted == {"by-service": 2, "events": 1}


def test_partitions_are_guarded_independently() -> None:
    """A gap on one partition does not hold back another."""
    guard = GapGuard()
    assert guard.admit(0, offset=5, last_applied=2, now=0.0).seek_to == 3
    assert guard.admit(1, offset=3, last_applied=2, now=0.0) == Admit(True)
