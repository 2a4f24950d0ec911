"""A block: many evaluation events of one service and release, stored as columns.

On the wire a block is an event whose ``event_id``, ``ts`` and metric values are arrays of
the same length (``null`` in a metric array: that event has no such metric)::

    {"service": "chat", "release": "r1", "event_id": ["a", "b"], "ts": [1.5, 2.5],
     "metrics": {"error": [0, 1], "latency_ms": [812.5, null]}}

Validating a block takes a handful of C-level passes per column (``set(map(type, ...))``,
``min``, ``max``, ``sum``) instead of Python code per event, which is what lets one worker
process read 100,000 events/s. A block that fails any check is judged event by event
(:func:`block_events` + :func:`~detectors.events.validate_event`), so each bad event is
rejected with the same reason it would get on its own and the good ones still count.

>>> b = validate_block({"service": "chat", "release": "r1", "event_id": ["a", "b"],
...                     "ts": [1.5, 2], "metrics": {"error": [0, True]}})
>>> b.ts, b.dense
([1.5, 2.0], {'error': [0.0, 1.0]})
>>> validate_block({"service": "chat", "release": "r1", "event_id": ["a", "b"],
...                 "ts": [1.5, 2], "metrics": {"error": [0, 2]}}) is None
True
>>> [e["metrics"] for e in block_events({"service": "chat", "release": "r1",
...     "event_id": ["a", "b"], "ts": [1.5, 2], "metrics": {"error": [0, None]}})]
[{'error': 0}, {}]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollguard.detectors.errors import InvalidEvent
from rollguard.detectors.events import METRIC_RANGES, Event
from rollguard.detectors.names import is_service_name

_NONE = type(None)
_NUMBERS = frozenset({float, int})
_METRIC_TYPES = frozenset({float, int, bool})
_BINARY = frozenset({0.0, 1.0})


@dataclass(frozen=True, slots=True)
class Block:
    """Valid events of one service and release, column by column.

    ``columns`` are the metric arrays as sent (numbers, booleans, None for "absent"), aligned
    with ``event_ids`` and ``ts``; ``dense`` holds each metric's present values as floats, in
    order; ``gapless`` names the metrics every event has, whose ``dense`` values are aligned
    with the events too. Neither is ever changed.
    """

    service: str
    release: str
    cohort: str
    event_ids: list[str]
    ts: list[float]
    columns: dict[str, list[Any]]
    dense: dict[str, list[float]]
    gapless: frozenset[str]

    def __len__(self) -> int:
        return len(self.event_ids)


def is_block(obj: object) -> bool:
    """True for a decoded JSON value shaped as a block (its ``event_id`` is an array)."""
    return type(obj) is dict and type(obj.get("event_id")) is list


def validate_block(obj: dict[str, Any]) -> Block | None:
    """Check a block (see :func:`is_block`) column by column.

    Returns None when some event in it is invalid: judge those one by one with
    :func:`block_events`. Raises :class:`InvalidEvent` (``bad_block``) when the arrays do not
    line up, so the block cannot be read as events at all.
    """
    ids: list[Any] = obj["event_id"]
    n = len(ids)
    ts = _columns_line_up(obj, n)
    service, release, cohort = obj.get("service"), obj.get("release"), obj.get("cohort", "")
    if cohort is None:
        cohort = ""
    if (not is_service_name(service) or type(release) is not str or not release
            or type(cohort) is not str):
        return None
    assert isinstance(service, str)  # is_service_name said so; this tells the type checker
    if set(map(type, ids)) != {str} or not all(ids):
        return None
    kinds = set(map(type, ts))
    # 1e12 s is year 33658: anything later is a unit mistake (ms or us), not a time.
    if not kinds <= _NUMBERS or not (min(ts) > 0 and max(ts) < 1e12):
        return None
    total = sum(ts)
    if total - total != 0.0:  # NaN slips through min and max
        return None
    if int in kinds:
        ts = list(map(float, ts))
    dense: dict[str, list[float]] = {}
    for name, column in obj["metrics"].items():
        values = _valid_values(name, column)
        if values is None:
            return None
        dense[name] = values
    gapless = frozenset(name for name, values in dense.items() if len(values) == n)
    return Block(service, release, cohort, ids, ts, obj["metrics"], dense, gapless)


def _columns_line_up(obj: dict[str, Any], n: int) -> list[Any]:
    if n == 0:
        raise InvalidEvent("bad_block", "a block needs at least one event")
    ts = obj.get("ts")
    if type(ts) is not list or len(ts) != n:
        raise InvalidEvent("bad_block", f"ts must be an array of {n} times, one per event_id")
    metrics = obj.get("metrics")
    if type(metrics) is not dict:
        raise InvalidEvent("bad_block", "metrics must be an object of arrays")
    for name, column in metrics.items():
        if type(column) is not list or len(column) != n:
            raise InvalidEvent("bad_block",
                               f"metrics.{name} must be an array of {n} values, one per event")
    return ts


def _valid_values(name: str, column: list[Any]) -> list[float] | None:
    # The present values as floats, or None when one of them would be rejected on its own.
    if len(column) == 1:
        return _valid_value(name, column[0])
    kinds = set(map(type, column))
    values = column
    if _NONE in kinds:
        kinds.discard(_NONE)
        values = [v for v in column if v is not None]
    if kinds != {float} and values:
        if not kinds <= _METRIC_TYPES:
            return None
        try:
            values = list(map(float, values))  # True reads as 1.0, as for single events
        except OverflowError:
            return None
    if not values:
        return []
    total = sum(values)
    if total - total != 0.0:  # a NaN or infinity somewhere (or an overflow: judged one by one)
        return None
    bounds = METRIC_RANGES.get(name)
    if bounds is not None:
        low, high, binary = bounds
        if min(values) < low or max(values) > high or (binary and not set(values) <= _BINARY):
            return None
    return values


def block_events(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a block as single-event objects, to be validated one by one.

    Only for a block whose arrays line up (:func:`validate_block` did not raise).
    """
    common: dict[str, Any] = {k: obj[k] for k in ("service", "release", "cohort") if k in obj}
    columns: dict[str, list[Any]] = obj["metrics"]
    return [
        {**common, "event_id": event_id, "ts": ts,
         "metrics": {name: column[i] for name, column in columns.items() if column[i] is not None}}
        for i, (event_id, ts) in enumerate(zip(obj["event_id"], obj["ts"], strict=True))
    ]


def block_as_events(block: Block) -> list[Event]:
    """The events a valid block stands for, one by one ("absent" values left out).

    >>> b = Block("chat", "v1", "", ["a", "b"], [1.0, 2.0], {"error": [0, None]}, {}, frozenset())
    >>> [(e.event_id, e.metrics) for e in block_as_events(b)]
    [('a', {'error': 0.0}), ('b', {})]
    """
    return [Event(event_id, block.ts[i], block.service, block.release, block.cohort,
                  {name: float(column[i]) for name, column in block.columns.items()
                   if column[i] is not None})
            for i, event_id in enumerate(block.event_ids)]


def _valid_value(name: str, value: Any) -> list[float] | None:
    # _valid_values for a column of one value (a quiet service's blocks) without its sets,
    # which took about a tenth of the partition loop's CPU per message at 1.3 events each.
    if value is None:
        return []
    if type(value) is not float:
        if type(value) not in _METRIC_TYPES:
            return None
        try:
            value = float(value)
        except OverflowError:
            return None
    if value - value != 0.0:
        return None
    bounds = METRIC_RANGES.get(name)
    if bounds is not None:
        low, high, binary = bounds
        if value < low or value > high or (binary and value not in _BINARY):
            return None
    return [value]
