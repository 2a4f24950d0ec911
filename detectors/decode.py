"""JSON text in, Python values out: orjson first, and a tolerant second look when it refuses.

orjson refuses the whole text for one number it cannot hold (``NaN``, ``Infinity``,
``1e400``, an integer of 400 digits). Those are only bad values of one event, so on that
slow path Python's ``json`` reads the text again with every such number as a non-finite
float; the event's own validation then rejects that event alone (``bad_metric_value``,
``bad_ts``). Anything else that is not JSON raises ``not_json`` with the decoder's message
and position.

>>> decode_json(b'[{"x": NaN}, {"x": 1e400}, {"x": 2}]')
[{'x': nan}, {'x': inf}, {'x': 2}]
>>> decode_json(b'{"x": 1')
Traceback (most recent call last):
...
rollguard.detectors.errors.InvalidEvent: not_json: unexpected end of data: line 1 column 8 (char 7)
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from rollguard.detectors.errors import InvalidEvent

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_INT_DIGITS = 18  # longer integers are read as floats (inf beyond 1e308), as orjson would


def _number(text: str) -> int | float:
    return int(text) if len(text) <= _INT_DIGITS else float(text)


def _constant(name: str) -> float:
    return float(name)  # NaN, Infinity, -Infinity


def decode_json(value: bytes | str) -> Any:
    """Decode JSON text; non-finite or oversized numbers come out as NaN or infinity.

    Raises :class:`InvalidEvent` (``not_json``) with the decoder's message and position.
    """
    try:
        return _loads(value)
    except _JSONDecodeError as exc:
        refused = exc
    try:
        decoded = json.loads(value, parse_int=_number, parse_constant=_constant)
        orjson.dumps(decoded)  # what orjson also refuses (lone surrogates) stays refused
    except (ValueError, TypeError, RecursionError):
        raise InvalidEvent("not_json", str(refused)[:200]) from None
    return decoded
