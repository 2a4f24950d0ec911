"""What each command does to a pointer state (pure planning, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from rollguard.actions.commands import Op, new_command
from rollguard.actions.plan import Change, NoChange, Refusal, plan
from rollguard.actions.releases import Release
from rollguard.actions.state import PointerState, decode, encode

V1 = Release("v1", {"model": "m1", "prompt": "p1", "index": "i1"})
V2 = Release("v2", {"model": "m2", "prompt": "p2", "index": "i2"})
V3 = Release("v3", {"model": "m3", "prompt": "p3", "index": "i3"})
RELEASES = {r.name: r for r in (V1, V2, V3)}


def state(active: Release = V2, stable: Release = V1, **fields: Any) -> PointerState:
    candidate = fields.get("candidate")
    if candidate is not None:
        fields["candidate_components"] = RELEASES[candidate].components
    return PointerState("bot", active.name, stable.name, 5, dict(active.components), **fields)


def run(before: PointerState | None, op: Op, by: str = "ann", **fields: Any) -> Any:
    return plan(before, new_command("bot", op, by, 0.0, **fields), RELEASES, now=1.0)


CASES = [
    # (description, state, op, fields, expected (active, stable, candidate, percent, cohorts))
    ("full promote", state(V1), "promote", {"release": "v2"}, ("v2", "v1", None, 0, ())),
    ("staged promote", state(V1), "promote", {"release": "v2", "percent": 10},
     ("v1", "v1", "v2", 10, ())),
    ("cohort promote", state(V1), "promote", {"release": "v2", "cohorts": ("beta",)},
     ("v1", "v1", "v2", 0, ("beta",))),
    ("promote the candidate fully", state(V1, candidate="v2", percent=10.0), "promote",
     {"release": "v2"}, ("v2", "v1", None, 0, ())),
    ("rollback to stable", state(V2), "rollback", {}, ("v1", "v1", None, 0, ())),
    ("rollback to a named release also makes it stable", state(V2), "rollback",
     {"release": "v3"}, ("v3", "v3", None, 0, ())),
    ("rollback drops a candidate", state(V1, candidate="v2", percent=30.0), "rollback", {},
     ("v1", "v1", None, 0, ())),
    ("staged cut of a candidate", state(V1, candidate="v2", percent=30.0), "rollback",
     {"percent": 5}, ("v1", "v1", "v2", 5, ())),
    ("staged cut of a fully promoted release", state(V2), "rollback", {"percent": 20},
     ("v1", "v1", "v2", 20, ())),
    ("drop a cohort", state(V1, candidate="v2", cohorts=("a", "b")), "rollback",
     {"cohorts": ("a",)}, ("v1", "v1", "v2", 0, ("b",))),
    ("cut to zero clears the candidate", state(V1, candidate="v2", percent=30.0), "rollback",
     {"percent": 0}, ("v1", "v1", None, 0, ())),
    ("mark stable", state(V2), "mark_stable", {}, ("v2", "v2", None, 0, ())),
]


@pytest.mark.parametrize(("before", "op", "fields", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_command_changes_the_pointer_as_described(
    before: PointerState, op: Op, fields: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    """The planned state has the expected releases, share and cohorts, and the next epoch."""
    result = run(before, op, **fields)
    assert isinstance(result, Change), result
    after = result.state
    assert (after.active, after.stable, after.candidate, after.percent, after.cohorts) == expected
    assert after.epoch == before.epoch + 1
    assert after.active_components == RELEASES[after.active].components
    if after.candidate is not None:
        assert after.candidate_components == RELEASES[after.candidate].components


REFUSALS = [
    ("unknown release", state(V1), "promote", {"release": "v9"}, "ann", "unknown_release"),
    ("unknown component", state(V2), "rollback", {"components": ("tokenizer",)}, "ann",
     "unknown_component"),
    ("pinned refuses a rule", state(V2, pinned=True), "rollback", {"force": True},
     "rule:errors", "pinned"),
    ("pinned needs force", state(V2, pinned=True), "rollback", {}, "ann", "pinned"),
    ("a rollback never raises a share", state(V1, candidate="v2", percent=5.0), "rollback",
     {"percent": 50}, "ann", "invalid"),
    ("mark stable needs a full release", state(V1, candidate="v2", percent=5.0), "mark_stable",
     {}, "ann", "invalid"),
    ("no pointer yet", None, "rollback", {}, "ann", "unknown_service"),
    ("first promote must be full", None, "promote", {"release": "v1", "percent": 5}, "ann",
     "invalid"),
]


@pytest.mark.parametrize(("before", "op", "fields", "by", "code"),
                         [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_a_command_that_cannot_apply_is_refused_with_a_code(
    before: PointerState | None, op: Op, fields: dict[str, Any], by: str, code: str
) -> None:
    """Refusals carry a short code the store records and maps to an exception."""
    result = run(before, op, by, **fields)
    assert isinstance(result, Refusal) and result.reason == code, result


@pytest.mark.parametrize(
    ("before", "op", "fields"),
    [(state(V1), "rollback", {}), (state(V2), "promote", {"release": "v2"}),
     (state(V2, pinned=True), "pin", {}), (state(V2), "unpin", {})],
    ids=["already stable", "already active", "already pinned", "not pinned"],
)
def test_a_command_already_in_effect_changes_nothing(
    before: PointerState, op: Op, fields: dict[str, Any]
) -> None:
    """Asking for what is already there is a no-change, reported as already applied."""
    assert isinstance(run(before, op, **fields), NoChange)


def test_a_partial_rollback_swaps_only_the_chosen_components() -> None:
    """model and prompt come from stable, index stays the candidate's, in a derived release."""
    result = run(state(V2), "rollback", components=("model", "prompt"))
    assert isinstance(result, Change) and result.derived is not None
    assert result.state.active == result.derived.name == "v2~rollback(model,prompt)->v1"
    assert result.state.active_components == {"index": "i2", "model": "m1", "prompt": "p1"}


def test_a_pointer_state_survives_its_json_encoding() -> None:
    """decode(encode(s)) == s, and fields from a newer writer are kept aside, not lost."""
    s = state(V1, candidate="v2", percent=12.5, cohorts=("beta",), pinned=True)
    assert decode(encode(s)) == s
    newer = decode(encode(s).replace(b'"active"', b'"region":"eu","active"', 1))
    assert newer == s and newer.extra == {"region": "eu"}


@pytest.mark.parametrize(
    ("asked", "stored", "basis_points"),
    [(12.345, 12.35, 1235), (12.344, 12.34, 1234), (0.125, 0.13, 13), (0.005, 0.01, 1),
     (0.004, 0.0, 0), (99.995, 100.0, 10000), (33.3333, 33.33, 3333), (50, 50.0, 5000)],
)
def test_a_share_is_stored_at_the_protocols_resolution_rounded_half_away_from_zero(
        asked: float, stored: float, basis_points: int) -> None:
    """Readers compute round(percent * 100); the stored value makes that the same integer in
    every language (no .5 left to round), for a promote and a staged rollback alike."""
    promoted = run(state(V1), "promote", release="v2", percent=asked)
    assert isinstance(promoted, Change)
    assert promoted.state.percent == stored
    assert decode(encode(promoted.state)).percent == stored
    assert round(promoted.state.percent * 100) == basis_points
    if stored < 100.0:
        cut = run(state(V1, candidate="v2", percent=100.0), "rollback", percent=asked)
        assert isinstance(cut, Change) and cut.state.percent == stored


def test_each_promotion_of_a_watched_release_starts_a_new_episode() -> None:
    """watched_since is the epoch at which the watched release became watched: a share
    change keeps it, a rollback and a promotion of the same release again renew it."""
    def changed(before: PointerState, op: Op, **fields: Any) -> PointerState:
        planned = plan(before, new_command("bot", op, "ann", 0.0, **fields), RELEASES, 1.0)
        assert isinstance(planned, Change)
        return planned.state

    staged = changed(state(V1, stable=V1), "promote", release="v2", percent=10)
    assert staged.watched_since == staged.epoch == 6
    assert changed(staged, "promote", release="v2", percent=50).watched_since == 6
    back = changed(staged, "rollback")
    again = changed(back, "promote", release="v2", percent=10)
    assert again.candidate == "v2" and again.watched_since == again.epoch == 8
