"""Events are validated with a countable reason, and nothing but InvalidEvent ever escapes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollguard.base.errors import InvalidEvent
from rollguard.detectors.events import REASONS, Event, parse_event, validate_event

GOOD = {"event_id": "a1", "ts": 1_790_000_000.25, "service": "chat", "release": "r1",
        "cohort": "eu", "metrics": {"hallucination": True, "latency_ms": 812, "accuracy": 0.9}}


def with_(**changes: object) -> dict[str, object]:
    event = {**GOOD, **changes}
    return {k: v for k, v in event.items() if v is not ...}


def test_valid_event_reads_booleans_and_integers_as_floats() -> None:
    """Booleans become 0/1 and integers floats, so statistics see one type."""
    event = validate_event(GOOD)
    assert event == Event("a1", 1_790_000_000.25, "chat", "r1", "eu",
                          {"hallucination": 1.0, "latency_ms": 812.0, "accuracy": 0.9})
    assert all(type(v) is float for v in event.metrics.values())


def test_cohort_and_unknown_metrics_are_optional_extras() -> None:
    """An event without a cohort is fine, and metrics nobody watches are kept, not refused."""
    event = validate_event(with_(cohort=..., metrics={"my_score": -3.5}))
    assert event.cohort == "" and event.metrics == {"my_score": -3.5}


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([GOOD], "not_object"),
        (with_(event_id=...), "missing_event_id"),
        (with_(event_id=7), "bad_event_id"),
        (with_(ts=...), "missing_ts"),
        (with_(ts="2026-11-23"), "bad_ts"),
        (with_(ts=True), "bad_ts"),
        (with_(ts=-1.0), "bad_ts"),
        (with_(ts=float("inf")), "bad_ts"),
        (with_(ts=10**400), "bad_ts"),
        (with_(ts=1_790_000_000_000), "bad_ts"),  # milliseconds, not seconds
        (with_(service=...), "missing_service"),
        (with_(service=""), "bad_service"),
        (with_(service="support bot"), "bad_service"),
        (with_(service="a:b"), "bad_service"),
        (with_(service="{chat}"), "bad_service"),
        (with_(service="chät"), "bad_service"),
        (with_(service="chat\n"), "bad_service"),
        (with_(service="c" * 129), "bad_service"),
        (with_(release=...), "missing_release"),
        (with_(release=["r1"]), "bad_release"),
        (with_(cohort=3), "bad_cohort"),
        (with_(metrics=...), "missing_metrics"),
        (with_(metrics=[1.0]), "bad_metrics"),
        (with_(metrics={"latency_ms": "fast"}), "bad_metric_value"),
        (with_(metrics={"latency_ms": float("nan")}), "bad_metric_value"),
        (with_(metrics={"cost_usd": float("-inf")}), "bad_metric_value"),
        (with_(metrics={"my_score": 10**400}), "bad_metric_value"),
        (with_(metrics={"hallucination": 0.5}), "metric_out_of_range"),
        (with_(metrics={"error": 2}), "metric_out_of_range"),
        (with_(metrics={"accuracy": 1.01}), "metric_out_of_range"),
        (with_(metrics={"toxicity": -0.1}), "metric_out_of_range"),
        (with_(metrics={"latency_ms": -1}), "metric_out_of_range"),
    ],
)
def test_invalid_event_is_rejected_with_its_reason(obj: object, reason: str) -> None:
    """Each kind of broken event has its own short reason code."""
    assert reason in REASONS
    with pytest.raises(InvalidEvent) as caught:
        validate_event(obj)
    assert caught.value.reason == reason


@pytest.mark.parametrize(("line", "reason"), [(b"", "not_json"), (b"{", "not_json"),
                                              (b'{"ts": NaN', "not_json"), ("[]", "not_object")])
def test_unparseable_line_is_rejected(line: bytes | str, reason: str) -> None:
    """Lines that are not JSON objects are rejected, never raised as another error."""
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(line)


@pytest.mark.parametrize("null_in", ["error", "latency_ms"])
def test_a_null_metric_is_absent_as_in_a_block(null_in: str) -> None:
    """``null`` in an event object means the event has no such metric (docs/wire-format.md)."""
    metrics = {"error": 0, "latency_ms": 5, null_in: None}
    event = validate_event(with_(metrics=metrics))
    assert event.metrics == {k: float(v) for k, v in metrics.items() if v is not None}


@pytest.mark.parametrize(
    ("line", "reason"),
    [(b'{"event_id": "a", "ts": NaN, "service": "s", "release": "r", "metrics": {}}', "bad_ts"),
     (b'{"event_id": "a", "ts": 1e400, "service": "s", "release": "r", "metrics": {}}', "bad_ts"),
     (b'{"event_id": "a", "ts": 1, "service": "s", "release": "r", "metrics": {"x": -Infinity}}',
      "bad_metric_value"),
     (b'{"event_id": "a", "ts": 1, "service": "s", "release": "r", "metrics": {"x": '
      + b"9" * 400 + b"}}", "bad_metric_value")],
)
def test_non_finite_numbers_are_bad_values_not_bad_json(line: bytes, reason: str) -> None:
    """NaN, Infinity, 1e400 and a 400-digit integer are JSON numbers this event cannot use."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(line)
    assert caught.value.reason == reason


def test_parse_event_accepts_text_and_bytes_alike() -> None:
    """The worker may hand over bytes, replay may hand over text."""
    line = json.dumps(GOOD)
    assert parse_event(line) == parse_event(line.encode())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*GOOD, "other"]), json_values, max_size=7))
def test_any_json_object_is_accepted_or_rejected_with_a_known_reason(obj: dict) -> None:
    """Whatever an object holds, validation answers with an Event or a known reason."""
    try:
        event = validate_event(obj)
    except InvalidEvent as exc:
        assert exc.reason in REASONS
    else:
        assert isinstance(event, Event)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60))
def test_random_bytes_never_crash_parsing(line: bytes) -> None:
    """Random bytes are rejected as not JSON (or validated), never crash."""
    try:
        parse_event(line)
    except InvalidEvent as exc:
        assert exc.reason in REASONS
