"""The blip-robust score: a stretch of at most a blip's length can never be the evidence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollguard.detectors.track import MetricTrack, recovered, recovered_by_river_adwin, robust_score

BLIP = 14  # buckets: 2 minutes of 10 s buckets, plus the margin the monitor adds

llrs = st.floats(-3.0, 3.0, allow_nan=False)


def cusum(values: list[float]) -> float:
    """The largest suffix sum: what a plain CUSUM would report at the end."""
    best, total = 0.0, 0.0
    for value in reversed(values):
        total += value
        best = max(best, total)
    return best


@st.composite
def runs_with_a_blip(draw: st.DrawFn) -> tuple[list[list[float]], int, int]:
    gaps = draw(st.lists(st.integers(1, 3), min_size=2, max_size=60))
    buckets = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    run = [[b, draw(llrs), 10, 1.0] for b in buckets]
    start = draw(st.integers(0, len(run) - 1))
    end = start
    while end + 1 < len(run) and run[end + 1][0] - run[start][0] < BLIP and draw(st.booleans()):
        end += 1
    return run, start, end


@settings(max_examples=300, deadline=None)
@given(runs_with_a_blip(), st.lists(st.floats(0, 1e6), min_size=60, max_size=60))
def test_a_blip_of_any_size_adds_nothing_to_the_score(case: tuple, blip_values: list) -> None:
    """Whatever values a <= 2-minute stretch holds, the score is bounded by the rest alone."""
    run, start, end = case
    for offset, entry in enumerate(run[start:end + 1]):
        entry[1] = blip_values[offset]
    # The best suffix of the run with the blip's values taken out: no blip value in it.
    without_blip = [0.0 if start <= i <= end else e[1] for i, e in enumerate(run)]
    assert robust_score(run, BLIP)[0] <= cusum(without_blip) + 1e-9


@settings(max_examples=300, deadline=None)
@given(st.lists(llrs, min_size=1, max_size=80))
def test_score_never_exceeds_the_plain_cusum(values: list[float]) -> None:
    """Leaving out the worst blip only lowers the evidence: the CUSUM's error bound holds."""
    run = [[b, v, 10, 1.0] for b, v in enumerate(values)]
    assert robust_score(run, BLIP)[0] <= cusum(values) + 1e-9


@pytest.mark.parametrize(("minutes_bad", "expected_above"), [(2, False), (4, True), (8, True)])
def test_steady_evidence_counts_only_beyond_the_blip_length(minutes_bad: int,
                                                             expected_above: bool) -> None:
    """Steady evidence of 1 per bucket scores (length - blip) buckets' worth."""
    run = [[b, 1.0, 10, 1.0] for b in range(minutes_bad * 6)]
    score, start = robust_score(run, BLIP)
    assert score == max(0.0, minutes_bad * 6 - BLIP)
    assert (score >= 5.0) is expected_above
    assert start == (0 if expected_above else len(run))


def test_episode_recovers_after_a_burst_then_quiet() -> None:
    """A burst lifts the CUSUM over the threshold; negative evidence afterwards closes it."""
    track = MetricTrack()
    opened_at = recovered_at = None
    for bucket in range(200):
        llr = 4.0 if 10 <= bucket < 20 else -0.3
        if track.update(bucket, llr, 10, 1.0, threshold=5.0, max_buckets=180):
            recovered_at = bucket
            break
        if track.episode_start >= 0 and opened_at is None:
            opened_at = bucket
    assert opened_at is not None and recovered_at is not None and recovered_at > opened_at
    assert track.cusum == 0.0 and not track.run


def test_adwin_sees_no_recovery_in_steady_evidence() -> None:
    """ADWIN over an unchanging positive run reports no recovery."""
    assert not recovered([[b, 0.4 + (b % 3) * 0.1, 10, 1.0] for b in range(120)])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.floats(-4.0, 4.0)), min_size=1, max_size=6),
       st.lists(st.floats(-0.5, 0.5), min_size=240, max_size=240))
def test_recovered_agrees_with_river_public_adwin(levels: list[tuple[int, float]],
                                                  noise: list[float]) -> None:
    """The Rust window recovered() uses decides as River's ADWIN class would, also when the
    evidence changes level several times (each change starts a new window)."""
    values = [level for length, level in levels for _ in range(length)]
    run = [[b, v + noise[b], 10, 1.0] for b, v in enumerate(values)]
    assert recovered(run) == recovered_by_river_adwin(run)
