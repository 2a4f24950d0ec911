"""Numbers, nulls and service names are judged per event, whatever else the message holds."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollguard.detectors.blocks import Block
from rollguard.detectors.events import Event
from rollguard.detectors.monitors import MonitorSet
from rollguard.detectors.policy import default_policy
from rollguard.streams.wire import read_message

T0 = 1_700_000_000.0
BAD_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"9" * 400]


def _event(i: int, value: bytes = b"0", service: str = "chat") -> bytes:
    return (b'{"event_id": "e%d", "ts": %f, "service": "%s", "release": "r1", '
            b'"metrics": {"error": 0, "latency_ms": %s}}' % (i, T0 + i, service.encode(), value))


def _block(values: list[bytes]) -> bytes:
    n = len(values)
    ids = b",".join(b'"b%d"' % i for i in range(n))
    ts = b",".join(b"%f" % (T0 + i) for i in range(n))
    return (b'{"service": "chat", "release": "r1", "event_id": [%s], "ts": [%s], '
            b'"metrics": {"error": [%s], "latency_ms": [%s]}}'
            % (ids, ts, b",".join([b"0"] * n), b",".join(values)))


def _judged(value: bytes) -> tuple[list[str], list[str]]:
    """(ids of the valid events, reasons of the rejected ones)."""
    valid: list[str] = []
    reasons: list[str] = []
    for item, _, error in read_message(value):
        if error is not None:
            reasons.append(error.reason)
        elif isinstance(item, Block):
            valid += item.event_ids
        elif isinstance(item, Event):
            valid.append(item.event_id)
    return valid, reasons


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_a_non_finite_number_rejects_its_event_alone_in_an_array(bad: bytes) -> None:
    """NaN, infinities, 1e400 and a 400-digit integer cost one event, not the message."""
    value = b"[" + b",".join([_event(0), _event(1, bad), _event(2)]) + b"]"
    assert _judged(value) == (["e0", "e2"], ["bad_metric_value"])


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_a_non_finite_number_rejects_its_event_alone_in_a_block(bad: bytes) -> None:
    value = b"[" + _block([b"1", bad, b"2.5", b"null"]) + b"]"
    assert _judged(value) == (["b0", "b2", "b3"], ["bad_metric_value"])


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40), st.data())
def test_a_block_with_bad_numbers_rejects_exactly_those_events(n: int, data: st.DataObject
                                                                 ) -> None:
    """Wherever non-finite numbers sit in a block, exactly their events are rejected."""
    bad_at = data.draw(st.sets(st.integers(0, n - 1)))
    values = [data.draw(st.sampled_from(BAD_NUMBERS)) if i in bad_at else b"%d" % i
              for i in range(n)]
    valid, reasons = _judged(b"[" + _block(values) + b"]")
    assert valid == [f"b{i}" for i in range(n) if i not in bad_at]
    assert reasons == ["bad_metric_value"] * len(bad_at)


@pytest.mark.parametrize(
    ("value", "where"),
    [(b'{"event_id": "a",', "line 1 column 18"), (b"[1, 2", "line 1 column 6"),
     (b"\xff\xfe", "UTF-8"), (b'["\\ud800"]', "surrogate")],
)
def test_not_json_says_what_the_decoder_found_and_where(value: bytes, where: str) -> None:
    [(_, raw, error)] = list(read_message(value))
    assert error is not None and error.reason == "not_json" and raw == value
    assert where in error.detail


def test_a_null_metric_in_an_event_object_is_absent() -> None:
    """Go's and Java's encoders write null for an unset field: it is not an error."""
    value = orjson.dumps({"event_id": "a", "ts": T0, "service": "chat", "release": "r1",
                          "metrics": {"error": None, "latency_ms": 5}})
    [(event, _, error)] = list(read_message(value))
    assert error is None and isinstance(event, Event) and event.metrics == {"latency_ms": 5.0}


@pytest.mark.parametrize("key", [None, "bad name"])
@pytest.mark.parametrize("service", ["bad name", "a:b", "{x}", "é", "x" * 129])
def test_an_invalid_service_name_is_a_dead_letter_keyed_or_not(key: str | None,
                                                               service: str) -> None:
    """The same event gets the same reason whether or not its message has a key."""
    monitors = MonitorSet(default_policy())
    event = {"event_id": "a", "ts": T0, "service": service, "release": "r1",
             "metrics": {"error": 0}}
    block = {"service": service, "release": "r1", "event_id": ["b"], "ts": [T0],
             "metrics": {"error": [0]}}
    fed = monitors.feed(read_message(orjson.dumps([event, block])), key)
    assert [r.reason for r in fed.rejected] == ["bad_service", "bad_service"]
    assert fed.events == 0 and len(monitors) == 0
