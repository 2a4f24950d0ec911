"""Traffic split by a stable hash of the request key (pure, no I/O)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollguard.actions.routing import BUCKETS, Router, bucket
from rollguard.actions.state import PointerState


def staged(percent: float, cohorts: tuple[str, ...] = (), service: str = "bot") -> PointerState:
    return PointerState(
        service, "v1", "v1", 2, {"model": "m1"}, candidate="v2",
        candidate_components={"model": "m2"}, percent=percent, cohorts=cohorts,
    )  # fmt: skip


@pytest.mark.parametrize("percent", [1.0, 5.0, 30.0, 50.0, 99.0])
def test_the_candidate_share_matches_the_percent_within_sampling_error(percent: float) -> None:
    """For 30 seeds of 5000 random keys, the candidate's share stays within 4.5 sigma."""
    router = Router(staged(percent))
    p, n = percent / 100, 5000
    sigma = (p * (1 - p) / n) ** 0.5
    for seed in range(30):
        rng = random.Random(seed)
        keys = [f"user-{rng.getrandbits(48)}" for _ in range(n)]
        share = sum(router.resolve(k)[0] == "v2" for k in keys) / n
        assert abs(share - p) < 4.5 * sigma, f"seed {seed}: {share:.4f} vs {p}"


def test_sequential_keys_split_evenly_too() -> None:
    """user-0 .. user-99999 (structured keys, CRC's weak spot) still split 20/80."""
    router = Router(staged(20.0))
    share = sum(router.resolve(f"user-{i}")[0] == "v2" for i in range(100_000)) / 100_000
    assert abs(share - 0.2) < 0.006


@given(st.text(max_size=40), st.floats(0, 100), st.floats(0, 100))
def test_cutting_the_share_only_moves_keys_off_the_candidate(
    key: str, low: float, high: float
) -> None:
    """A key on the candidate at the lower share is on it at any higher share."""
    low, high = sorted((low, high))
    if Router(staged(low)).resolve(key)[0] == "v2":
        assert Router(staged(high)).resolve(key)[0] == "v2"


@given(st.text(max_size=40))
def test_the_fast_path_and_bucket_agree(key: str) -> None:
    """Router's inlined hash is bucket(); the candidate serves buckets below percent * 100."""
    on_candidate = Router(staged(37.5)).resolve(key)[0] == "v2"
    assert on_candidate == (bucket("bot", key) < 37.5 * BUCKETS / 100)


def test_cohorts_go_to_the_candidate_whatever_the_hash() -> None:
    """A request from a listed cohort is served by the candidate even at 0%."""
    router = Router(staged(0.0, cohorts=("beta",)))
    assert router.resolve("anyone", cohort="beta")[0] == "v2"
    assert router.resolve("anyone", cohort="other")[0] == "v1"
    assert router.resolve("anyone")[0] == "v1"


def test_without_candidate_every_key_gets_the_active_release() -> None:
    """No staged rollout: one answer, with the active release's components, read-only."""
    router = Router(PointerState("bot", "v1", "v1", 1, {"model": "m1"}))
    name, components = router.resolve("k")
    assert (name, dict(components)) == ("v1", {"model": "m1"})
    with pytest.raises(TypeError):
        components["model"] = "x"  # type: ignore[index]


def test_bucket_values_are_pinned_for_other_languages() -> None:
    """Fixed vectors for implementers in other languages (docs/pointer-protocol.md)."""
    assert [bucket("support-bot", k) for k in ("user-42", "user-7", "")] == [4673, 1691, 8152]
