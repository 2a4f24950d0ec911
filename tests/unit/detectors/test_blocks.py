"""Blocks (events as columns) are judged and counted exactly as their events one by one."""

from __future__ import annotations

import heapq
import math
import random
from functools import lru_cache
from typing import Any

import orjson
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from bench.scenarios import Scenario, dirty, to_lines
from rollguard.analysis import line_batches
from rollguard.base.errors import InvalidEvent
from rollguard.detectors.blocks import Block, block_events, is_block, validate_block
from rollguard.detectors.events import REASONS, Event, validate_event
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.policy import Policy, default_policy
from rollguard.streams.wire import encode_blocks
from tests.support.streams import busy_stream, dry_run_policy, replay_lines


def block(n: int = 2, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"service": "chat", "release": "r1",
                            "event_id": [f"e{i}" for i in range(n)],
                            "ts": [1_700_000_000.0 + i for i in range(n)],
                            "metrics": {"error": [0] * n, "latency_ms": [100.0] * n}}
    return {**base, **fields}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, {"error": [0.0, 0.0], "latency_ms": [100.0, 100.0]}),
        ({"metrics": {"error": [True, None]}}, {"error": [1.0]}),
        ({"metrics": {"toxicity": [None, None]}}, {"toxicity": []}),
        ({"ts": [1_700_000_000, 1_700_000_001]},
         {"error": [0.0, 0.0], "latency_ms": [100.0, 100.0]}),
        ({"cohort": None}, {"error": [0.0, 0.0], "latency_ms": [100.0, 100.0]}),
        ({"metrics": {"custom": [-5, 2.5]}}, {"custom": [-5.0, 2.5]}),
    ],
)
def test_valid_blocks_give_their_present_values_as_floats(changes: dict[str, Any],
                                                          expected: dict[str, list[float]]) -> None:
    """Numbers and booleans read as floats; null means the event lacks that metric."""
    result = validate_block(block(**changes))
    assert isinstance(result, Block)
    assert result.dense == expected
    assert all(type(t) is float for t in result.ts)
    assert result.gapless == {name for name, values in expected.items() if len(values) == 2}


@pytest.mark.parametrize(
    ("changes", "reasons"),
    [
        ({"metrics": {"error": [0, 2]}}, [None, "metric_out_of_range"]),
        ({"metrics": {"toxicity": [0.5, "high"]}}, [None, "bad_metric_value"]),
        ({"metrics": {"latency_ms": [-1.0, 5.0]}}, ["metric_out_of_range", None]),
        ({"metrics": {"latency_ms": [math.nan, 5.0]}}, ["bad_metric_value", None]),
        ({"metrics": {"cost_usd": [math.inf, 5.0]}}, ["bad_metric_value", None]),
        ({"metrics": {"custom": [10**400, 1]}}, ["bad_metric_value", None]),
        ({"ts": [1_700_000_000.0, math.nan]}, [None, "bad_ts"]),
        ({"ts": [1.7e15, 1.0]}, ["bad_ts", None]),
        ({"ts": [None, 1.0]}, ["missing_ts", None]),
        ({"ts": [True, 1.0]}, ["bad_ts", None]),
        ({"event_id": ["", "b"]}, ["bad_event_id", None]),
        ({"event_id": ["a", 7]}, [None, "bad_event_id"]),
        ({"service": ""}, ["bad_service", "bad_service"]),
        ({"release": None}, ["missing_release", "missing_release"]),
        ({"cohort": 3}, ["bad_cohort", "bad_cohort"]),
    ],
)
def test_a_block_with_a_bad_event_is_judged_event_by_event(changes: dict[str, Any],
                                                          reasons: list[str | None]) -> None:
    """Only the bad events are rejected, each with the reason it would get on its own."""
    raw = block(**changes)
    assert validate_block(raw) is None
    assert [reason_of(event) for event in block_events(raw)] == reasons


@pytest.mark.parametrize(
    "changes",
    [
        {"event_id": []},
        {"ts": [1.0]},
        {"ts": "now"},
        {"metrics": [1, 2]},
        {"metrics": {"error": [0]}},
        {"metrics": {"error": 0}},
    ],
)
def test_a_block_whose_arrays_do_not_line_up_is_rejected_whole(changes: dict[str, Any]) -> None:
    """Arrays of different lengths cannot be read as events at all: one bad_block."""
    with pytest.raises(InvalidEvent) as caught:
        validate_block(block(**changes))
    assert caught.value.reason == "bad_block"
    assert "bad_block" in REASONS


def test_only_an_array_event_id_makes_a_block() -> None:
    assert is_block(block())
    assert not is_block({"event_id": "e1", "ts": 1.0})
    assert not is_block([block()])


def reason_of(event: dict[str, Any]) -> str | None:
    try:
        validate_event(event)
    except InvalidEvent as exc:
        return exc.reason
    return None


ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(10**300, 10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1.0, 0.5]),
    st.text(max_size=2))
METRIC_NAMES = st.sampled_from(["error", "hallucination", "toxicity", "accuracy", "latency_ms",
                                "cost_usd", "custom"])


@st.composite
def raw_blocks(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 6))
    column = st.lists(ANY_VALUE, min_size=n, max_size=n)
    return {
        "service": draw(st.sampled_from(["chat", "", None, 3])),
        "release": draw(st.sampled_from(["r1", "r2", "", None])),
        "cohort": draw(st.sampled_from(["eu", None, 5])),
        "event_id": draw(st.lists(st.sampled_from(["a", "b", "", None, 1]), min_size=n,
                                  max_size=n)),
        "ts": draw(st.lists(st.one_of(st.floats(1.0, 2e12), st.integers(-1, 2 * 10**12),
                                      st.sampled_from([math.nan, None, True])),
                            min_size=n, max_size=n)),
        "metrics": draw(st.dictionaries(METRIC_NAMES, column, max_size=4)),
    }


@settings(max_examples=400, deadline=None)
@given(raw_blocks())
def test_a_block_is_valid_exactly_when_each_of_its_events_is(raw: dict[str, Any]) -> None:
    """The column checks accept a block iff every event passes the single-event checks,
    and then hold the same values those events would."""
    events = block_events(raw)
    singles: list[Event | None] = []
    for event in events:
        try:
            singles.append(validate_event(event))
        except InvalidEvent:
            singles.append(None)
    result = validate_block(raw)
    if any(single is None for single in singles):
        assert result is None
        return
    assert result is not None
    assert result.ts == [e.ts for e in singles if e]
    for name, column in raw["metrics"].items():
        present = [e.metrics[name] for e in singles if e and name in e.metrics]
        assert result.dense[name] == present
        assert (name in result.gapless) == (len(present) == len(column))


# -- the monitor ------------------------------------------------------------------------
def as_wire(event: Event, rng: random.Random) -> dict[str, Any]:
    metrics: dict[str, Any] = dict(event.metrics)
    for name in ("error", "hallucination", "complaint"):  # 0/1 may come as ints or booleans
        if name in metrics and rng.random() < 0.5:
            metrics[name] = rng.choice([int, bool])(metrics[name])
    return {"event_id": event.event_id, "ts": event.ts, "service": event.service,
            "release": event.release, "metrics": metrics}


def chunks(events: list[dict[str, Any]], rng: random.Random, longest: int) -> list[list[dict]]:
    # Runs of consecutive events of one release, so that each is one block in stream order.
    out: list[list[dict]] = []
    for event in events:
        if (out and out[-1][-1]["release"] == event["release"]
                and len(out[-1]) < rng.randint(1, longest)):
            out[-1].append(event)
        else:
            out.append([event])
    return out


def observe_chunks(pieces: list[list[dict]], rng: random.Random, writes: float,
                   restores: float, policy: Policy | None = None) -> tuple[list[dict], bytes]:
    policy = policy or dry_run_policy()
    monitor = ServiceMonitor("chat", policy)
    decisions: list[dict] = []
    for piece in pieces:
        if rng.random() < writes:
            state = monitor.to_bytes()  # a checkpoint of the live monitor, which goes on
            if rng.random() < restores:
                monitor = ServiceMonitor.from_bytes(state, policy)
        for item in orjson.loads(encode_blocks(piece)):
            found = validate_block(item)
            assert found is not None
            decisions += [d.to_dict() for d in monitor.observe_block(found)]
    decisions += [d.to_dict() for d in monitor.flush()]
    return decisions, monitor.to_bytes()


def observe_one_by_one(events: list[dict[str, Any]],
                       policy: Policy | None = None) -> tuple[list[dict], bytes]:
    monitor = ServiceMonitor("chat", policy or dry_run_policy())
    decisions = [d.to_dict() for e in events for d in monitor.observe(validate_event(e))]
    decisions += [d.to_dict() for d in monitor.flush()]
    return decisions, monitor.to_bytes()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2), split=st.integers(0, 10**6), longest=st.integers(1, 600),
       writes=st.sampled_from([0.0, 0.05, 0.5]), restores=st.sampled_from([0.0, 0.5, 1.0]))
def test_blocks_decide_exactly_as_their_events_one_by_one(
        seed: int, split: int, longest: int, writes: float, restores: float) -> None:
    """Any cut of a dirty stream (duplicates, late and out-of-order events) into blocks, with
    state writes and restores anywhere, gives the same decisions and the same final state."""
    rng = random.Random(split)
    events = [as_wire(e, rng) for e in busy_stream(seed)]
    expected, expected_state = observe_one_by_one(events)
    assert expected, "the stream must produce decisions for the comparison to mean anything"
    got, state = observe_chunks(chunks(events, rng, longest), rng, writes, restores)
    assert got == expected
    assert state == expected_state


@pytest.mark.parametrize(
    ("seed", "metric", "mode"),
    [(1, "error", "canary"), (2, "latency_ms", "canary"), (3, "accuracy", "cutover"),
     (4, "toxicity", "canary"), (5, "cost_usd", "cutover"), (6, "hallucination", "canary")],
)
def test_blocks_roll_back_exactly_when_single_events_do(seed: int, metric: str,
                                                        mode: str) -> None:
    """With the default policy, a sustained regression sent as blocks is rolled back at the
    same bucket, with the same evidence, as when its events come one by one."""
    scenario = Scenario(seed, rate=6.0, mode=mode, metric=metric, magnitude=3.0,
                        duration=1500)
    rng = random.Random(seed)
    events = [as_wire(e, rng) for e in scenario.events()]
    expected, expected_state = observe_one_by_one(events, default_policy())
    assert [d["action"] for d in expected].count("rollback") == 1
    got, state = observe_chunks(chunks(events, rng, 400), rng, 0.1, 0.3, default_policy())
    assert (got, state) == (expected, expected_state)


# -- replaying lines of single events, counted as blocks (rollguard.analysis.line_batches) --
@lru_cache(maxsize=4)
def interleaved_recording(seed: int) -> tuple[bytes, ...]:
    """Three services' canaries interleaved in time (two regressions, one blip), made dirty:
    junk lines, duplicates, events out of order."""
    kinds = [{"metric": "latency_ms"}, {"metric": "error", "blip": 150.0}, {"metric": "error"}]
    streams = [Scenario(seed * 3 + i, service=f"svc-{i}", rate=2.0, deploy_at=300,
                        magnitude=4.0, onset=60, duration=1200, **kind).events()  # type: ignore[arg-type]
               for i, kind in enumerate(kinds)]
    merged = heapq.merge(*streams, key=lambda e: e.ts)
    return tuple(dirty(to_lines(merged), seed, invalid=0.01, duplicates=0.02, jitter=6.0))


ODD_LINES = [  # each alone: rejected, or valid in a form the batches must not mistake
    lambda e: {**e, "metrics": {**e["metrics"], "error": None}},  # a null value: rejected
    lambda e: {**e, "ts": int(e["ts"])},  # an integer time: valid
    lambda e: {**e, "cohort": "eu"},  # another cohort of the same release: valid
    lambda e: {**e, "cohort": None},  # valid, as no cohort
    lambda e: {**e, "service": ["x"]},  # unhashable service: rejected
    lambda e: {k: v for k, v in e.items() if k != "service"},  # rejected
    lambda e: {**e, "release": {"a": 1}},  # rejected
    lambda e: {**e, "metrics": {"latency_ms": 5.0}},  # valid, one metric only
    lambda e: [e],  # an array of one event object: valid
    lambda e: orjson.loads(encode_blocks([e])),  # an array of one block: valid
    lambda e: orjson.loads(encode_blocks([e]))[0],  # a block alone on its line: valid
]


def one_valid_event(line: bytes) -> bool:
    try:
        return reason_of(orjson.loads(line)) is None
    except orjson.JSONDecodeError:
        return False


@settings(max_examples=8, deadline=None, phases=[Phase.reuse, Phase.generate])
@given(seed=st.integers(0, 1), shuffle=st.integers(0, 10**6), odd=st.floats(0.0, 0.02),
       run_lines=st.sampled_from([1, 5, 64, 1024]))
def test_lines_counted_in_batches_decide_exactly_as_one_by_one(
        seed: int, shuffle: int, odd: float, run_lines: int) -> None:
    """A recording of interleaved services, with junk, duplicates, late events, odd but valid
    lines and invalid ones anywhere, replays to the same decisions in the same order, the
    same summary, and monitors made in the same order with the same state, however the
    lines are cut into batches."""
    rng = random.Random(shuffle)
    lines = list(interleaved_recording(seed))
    for i in range(len(lines)):
        if rng.random() < odd and one_valid_event(lines[i]):
            lines[i] = orjson.dumps(rng.choice(ODD_LINES)(orjson.loads(lines[i])))
    expected = replay_lines(lines, batched=False)
    assert len(expected[0]) >= 2, "the recording must decide for the comparison to mean much"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(line_batches, "RUN_LINES", run_lines)
        assert replay_lines(lines, batched=True) == expected
