"""The evaluation event: its wire format, validation and the reasons an event is rejected."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollguard.detectors.decode import decode_json
from rollguard.detectors.errors import InvalidEvent
from rollguard.detectors.names import SERVICE_NAME, SERVICE_NAME_RULE

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
    "bad_block",
)
"""Every reason code :class:`~rollguard.base.errors.InvalidEvent` can carry from this module."""


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


_service_name = SERVICE_NAME.match
_new = object.__new__
_SETTERS = tuple(Event.__dict__[name].__set__ for name in Event.__slots__)


def _build(event_id: str, ts: float, service: str, release: str, cohort: str,
           metrics: dict[str, float]) -> Event:
    # The same object Event(...) makes, at half the cost: a frozen dataclass's __init__
    # goes through object.__setattr__ per field, the slot descriptors do not.
    event = _new(Event)
    s0, s1, s2, s3, s4, s5 = _SETTERS
    s0(event, event_id)
    s1(event, ts)
    s2(event, service)
    s3(event, release)
    s4(event, cohort)
    s5(event, metrics)
    return event


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
    rollguard.detectors.errors.InvalidEvent: missing_ts: ts is required
    """
    return validate_event(decode_json(line))


def _text(obj: dict[str, Any], field: str, *, required: bool = True) -> str:
    value = obj.get(field)
    if value is None:
        if required:
            raise InvalidEvent(f"missing_{field}", f"{field} is required")
        return ""
    if type(value) is not str or (required and not value):
        raise InvalidEvent(f"bad_{field}", f"{field} must be a non-empty string")
    return value


_INF = float("inf")
# name -> (low, high, must be 0 or 1); other metric names only have to be finite numbers.
METRIC_RANGES: dict[str, tuple[float, float, bool]] = {
    **{name: (0.0, 1.0, True) for name in BINARY_METRICS},
    **{name: (0.0, 1.0, False) for name in UNIT_METRICS},
    **{name: (0.0, _INF, False) for name in NON_NEGATIVE_METRICS},
}


def _metrics(raw: dict[str, Any]) -> dict[str, float]:
    # One loop without helper calls: this runs for every metric of every event. When every
    # value already is a float (the usual case) the decoded dict itself is returned, uncopied.
    converted: dict[str, float] | None = None
    absent = False
    for name, value in raw.items():
        if type(value) is not float:
            if value is None:  # null: the event has no such metric, as in a block's column
                absent = True
                continue
            if type(value) is bool:  # before int: True reads as 1.0, not as a number
                value = 1.0 if value else 0.0
            elif type(value) is int:
                try:
                    value = float(value)
                except OverflowError:
                    raise InvalidEvent("bad_metric_value", f"metrics.{name} is too large") from None
            else:
                raise InvalidEvent("bad_metric_value",
                                   f"metrics.{name} must be a number or boolean")
            if converted is None:
                converted = {}
            converted[name] = value
        elif value - value != 0.0:  # NaN or +-inf (orjson never yields them; json does)
            raise InvalidEvent("bad_metric_value", f"metrics.{name} must be finite")
        bounds = METRIC_RANGES.get(name)
        if bounds is not None and (value < bounds[0] or value > bounds[1] or (
                bounds[2] and value != 0.0 and value != 1.0)):
            low, high, binary = bounds
            allowed = "0 or 1" if binary else f"in [{low:g}, {high:g}]"
            raise InvalidEvent("metric_out_of_range", f"metrics.{name} must be {allowed}")
    if absent:
        return {k: v for k, v in {**raw, **(converted or {})}.items() if v is not None}
    if converted:
        return {**raw, **converted}
    return raw


def validate_event(obj: object) -> Event:
    """Check an already-decoded JSON value and build an :class:`Event`.

    Same checks and reason codes as :func:`parse_event`.

    >>> validate_event([1, 2])
    Traceback (most recent call last):
    ...
    rollguard.detectors.errors.InvalidEvent: not_object: an event must be a JSON object
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
    if (type(ts) is not float and type(ts) is not int) or not 0 < ts < 1e12:
        # 1e12 s is year 33658: anything later is a unit mistake (ms or us), not a time.
        raise InvalidEvent("bad_ts", "ts must be a finite positive number of unix seconds")
    service = obj.get("service")
    if type(service) is not str or not service:
        service = _text(obj, "service")  # the slow path names what is wrong
    if _service_name(service) is None:
        raise InvalidEvent("bad_service", f"service must be {SERVICE_NAME_RULE}")
    release = obj.get("release")
    if type(release) is not str or not release:
        release = _text(obj, "release")
    cohort = obj.get("cohort")
    if cohort is None:
        cohort = ""
    elif type(cohort) is not str:
        raise InvalidEvent("bad_cohort", "cohort must be a string")
    raw = obj.get("metrics")
    if raw is None:
        raise InvalidEvent("missing_metrics", "metrics is required")
    if type(raw) is not dict:
        raise InvalidEvent("bad_metrics", "metrics must be an object")
    return _build(event_id, float(ts), service, release, cohort, _metrics(raw))
