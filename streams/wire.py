"""The Kafka wire format of evaluation events: one event, or a batch of them, per message.

A message value is UTF-8 JSON: either one event object, or an array of event objects (what
the emitter sends, so that one Kafka message carries many events). The key is the service
name. See docs/wire-format.md.

>>> [e for e, _ in split_message(b'[{"a": 1}, 2]')]
[{'a': 1}, 2]
>>> split_message(b'{"a": 1}')
[({'a': 1}, None)]
>>> split_message(b'nope')
[(None, 'not_json')]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

# A batch is capped so that one message never exceeds Kafka's default 1 MB message size.
MAX_BATCH_BYTES = 900_000


def split_message(value: bytes | None) -> list[tuple[Any, str | None]]:
    """Decode a message into ``(decoded_event_or_None, reject_reason_or_None)`` pairs.

    Each element of a batch is validated on its own later, so one bad element never takes
    the rest of the batch with it.
    """
    if not value:
        return [(None, "empty_message")]
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return [(None, "not_json")]
    if isinstance(decoded, list):
        if not decoded:
            return [(None, "empty_batch")]
        return [(item, None) for item in decoded]
    return [(decoded, None)]


def encode_batch(events: Iterable[Mapping[str, Any]]) -> bytes:
    """Encode events as one message value (a JSON array)."""
    return orjson.dumps(list(events))
