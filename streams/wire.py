"""The Kafka wire format of evaluation events: one event, or a batch of them, per message.

A message value is UTF-8 JSON: either one event object, or an array of event objects and
blocks (:mod:`rollguard.detectors.blocks`: the events of one release as columns, which is what the
emitter sends, so that one Kafka message carries many events and the worker reads them a
column at a time). The key is the service name. See docs/wire-format.md.

>>> [e for e, _ in split_message(b'[{"a": 1}, 2]')]
[{'a': 1}, 2]
>>> split_message(b'{"a": 1}')
[({'a': 1}, None)]
>>> split_message(b'nope')
[(None, 'not_json')]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from rollguard.base.errors import InvalidEvent
from rollguard.detectors.blocks import Block, block_events, is_block, validate_block
from rollguard.detectors.decode import decode_json
from rollguard.detectors.events import Event, validate_event

# A batch is capped so that one message never exceeds Kafka's default 1 MB message size.
MAX_BATCH_BYTES = 900_000


def split_message(value: bytes | None) -> list[tuple[Any, str | None]]:
    """Decode a message into ``(decoded_event_or_None, reject_reason_or_None)`` pairs.

    Each element of a batch is validated on its own later, so one bad element never takes
    the rest of the batch with it.
    """
    return [(item, error.reason if error else None) for item, error in _split(value)]


def _split(value: bytes | None) -> list[tuple[Any, InvalidEvent | None]]:
    if not value:
        return [(None, InvalidEvent("empty_message"))]
    try:
        decoded = decode_json(value)
    except InvalidEvent as exc:
        return [(None, exc)]
    if isinstance(decoded, list):
        if not decoded:
            return [(None, InvalidEvent("empty_batch"))]
        return [(item, None) for item in decoded]
    return [(decoded, None)]


def read_message(value: bytes | None) -> Iterator[tuple[Event | Block | None, Any,
                                                       InvalidEvent | None]]:
    """The events and blocks of a message, valid or not: ``(item, raw, None)`` for a valid
    event or block, ``(None, raw, error)`` for each thing rejected (``raw`` is what it was
    decoded from, or the whole value when that could not be decoded).

    >>> [(type(i).__name__, e and e.reason) for i, _, e in read_message(b'[{"a": 1}]')]
    [('NoneType', 'missing_event_id')]
    """
    for raw, error in _split(value):
        if error is not None:
            yield None, value, error
            continue
        yield from read_decoded(raw)


def read_decoded(raw: Any) -> Iterator[tuple[Event | Block | None, Any, InvalidEvent | None]]:
    """The events of one decoded element of a message (an event object or a block), as
    :func:`read_message` yields them."""
    if is_block(raw):
        try:
            block = validate_block(raw)
        except InvalidEvent as exc:
            yield None, raw, exc
            return
        if block is not None:
            yield block, raw, None
            return
        singles: Iterable[Any] = block_events(raw)  # some are bad: judge them one by one
    else:
        singles = (raw,)
    for one in singles:
        try:
            event = validate_event(one)
        except InvalidEvent as exc:
            yield None, one, exc
            continue
        yield event, one, None


def encode_batch(events: Iterable[Mapping[str, Any]]) -> bytes:
    """Encode events as one message value (a JSON array of event objects)."""
    return orjson.dumps(list(events))


def encode_blocks(events: Iterable[Mapping[str, Any]]) -> bytes:
    """Encode events as one message value: a JSON array of blocks, one per release and cohort.

    Events keep their order within a block; blocks come in the order of their first event.
    A metric an event lacks is ``null`` in its column.

    >>> encode_blocks([{"event_id": "a", "ts": 1.0, "service": "s", "release": "r",
    ...                 "metrics": {"error": 0}},
    ...                {"event_id": "b", "ts": 2.0, "service": "s", "release": "r",
    ...                 "metrics": {"latency_ms": 5.5}}])
    b'[{"service":"s","release":"r","event_id":["a","b"],"ts":[1.0,2.0],"metrics":{"error":[0,null],"latency_ms":[null,5.5]}}]'
    """
    return orjson.dumps(blocks_of(events))


def blocks_of(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Events as blocks (see :func:`encode_blocks`), decoded: one per release and cohort."""
    groups: dict[tuple[str, str, str | None], list[Mapping[str, Any]]] = {}
    for event in events:
        key = (event["service"], event["release"], event.get("cohort"))
        groups.setdefault(key, []).append(event)
    return [_block(key, group) for key, group in groups.items()]


def _block(key: tuple[str, str, str | None], events: list[Mapping[str, Any]]) -> dict[str, Any]:
    service, release, cohort = key
    names = dict.fromkeys(name for event in events for name in event["metrics"])
    block: dict[str, Any] = {"service": service, "release": release}
    if cohort is not None:
        block["cohort"] = cohort
    block["event_id"] = [event["event_id"] for event in events]
    block["ts"] = [event["ts"] for event in events]
    block["metrics"] = {name: [event["metrics"].get(name) for event in events]
                        for name in names}
    return block
