"""The evaluation event: its wire format, validation and the reasons an event is rejected."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from rollguard.errors import InvalidEvent

# Allowed value ranges of the standard metrics; any other metric only has to be finite.
# Binary metrics must be 0 or 1 (a JSON boolean is accepted and read as 0/1).
BINARY_METRICS = frozenset({"hallucination", "error", "complaint"})
UNIT_METRICS = frozenset({"toxicity", "accuracy"})
NON_NEGATIVE_METRICS = frozenset({"latency_ms", "cost_usd"})

REASONS = (
    "not_json",
    "not_object",
    "missing_event_id",
    "bad_event_id",
    "missing_ts",
    "bad_ts",
    "missing_service",
    "bad_service",
    "missing_release",
    "bad_release",
    "bad_cohort",
    "missing_metrics",
    "bad_metrics",
    "bad_metric_value",
    "metric_out_of_range",
)
"""Every reason code :class:`~rollguard.errors.InvalidEvent` can carry from this module."""


@dataclass(frozen=True, slots=True)
class Event:
    """One model output with its evaluation metrics.

    ``ts`` is event time in unix seconds; ``metrics`` maps a metric name to a finite float
    (booleans already read as 0.0/1.0). An event may carry only some metrics.
    """

    event_id: str
    ts: float
    service: str
    release: str
    cohort: str
    metrics: dict[str, float]


def parse_event(line: bytes | str) -> Event:
    """Decode one JSON line and validate it.

    Raises
    ------
    InvalidEvent
        With a short ``reason`` code (see :data:`REASONS`) and a detail.

    Examples
    --------
    >>> e = parse_event('{"event_id": "a1", "ts": 1700000000.5, "service": "chat",'
    ...                 ' "release": "r1", "metrics": {"hallucination": true, "latency_ms": 812}}')
    >>> e.release, e.metrics
    ('r1', {'hallucination': 1.0, 'latency_ms': 812.0})
    >>> parse_event('{"event_id": "a2", "service": "chat", "release": "r1", "metrics": {}}')
    Traceback (most recent call last):
    ...
    rollguard.errors.InvalidEvent: missing_ts: ts is required
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("not_json", str(exc)[:80]) from None
    return validate_event(obj)


def _text(obj: dict[str, Any], field: str, *, required: bool = True) -> str:
    value = obj.get(field)
    if value is None:
        if required:
            raise InvalidEvent(f"missing_{field}", f"{field} is required")
        return ""
    if type(value) is not str or (required and not value):
        raise InvalidEvent(f"bad_{field}", f"{field} must be a non-empty string")
    return value


def _metric_value(name: str, value: object) -> float:
    # bool is a subclass of int: test it first so True reads as 1.0, never as a number 1.
    if type(value) is bool:
        return 1.0 if value else 0.0
    if type(value) is not float and type(value) is not int:
        raise InvalidEvent("bad_metric_value", f"metrics.{name} must be a number or boolean")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidEvent("bad_metric_value", f"metrics.{name} must be finite")
    if name in BINARY_METRICS:
        if number != 0.0 and number != 1.0:
            raise InvalidEvent("metric_out_of_range", f"metrics.{name} must be 0 or 1")
    elif name in UNIT_METRICS:
        if not 0.0 <= number <= 1.0:
            raise InvalidEvent("metric_out_of_range", f"metrics.{name} must be in [0, 1]")
    elif name in NON_NEGATIVE_METRICS and number < 0.0:
        raise InvalidEvent("metric_out_of_range", f"metrics.{name} must be >= 0")
    return number


def validate_event(obj: object) -> Event:
    """Check an already-decoded JSON value and build an :class:`Event`.

    Same checks and reason codes as :func:`parse_event`.

    >>> validate_event([1, 2])
    Traceback (most recent call last):
    ...
    rollguard.errors.InvalidEvent: not_object: an event must be a JSON object
    """
    if type(obj) is not dict:
        raise InvalidEvent("not_object", "an event must be a JSON object")
    event_id = obj.get("event_id")
    if event_id is None:
        raise InvalidEvent("missing_event_id", "event_id is required")
    if type(event_id) is not str or not event_id:
        raise InvalidEvent("bad_event_id", "event_id must be a non-empty string")
    ts = obj.get("ts")
    if ts is None:
        raise InvalidEvent("missing_ts", "ts is required")
    if (type(ts) is not float and type(ts) is not int) or not math.isfinite(ts) or ts <= 0:
        raise InvalidEvent("bad_ts", "ts must be a finite positive number of unix seconds")
    service = _text(obj, "service")
    release = _text(obj, "release")
    cohort = _text(obj, "cohort", required=False)
    raw = obj.get("metrics")
    if raw is None:
        raise InvalidEvent("missing_metrics", "metrics is required")
    if type(raw) is not dict:
        raise InvalidEvent("bad_metrics", "metrics must be an object")
    metrics = {name: _metric_value(name, value) for name, value in raw.items()}
    return Event(event_id, float(ts), service, release, cohort, metrics)
