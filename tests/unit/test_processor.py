"""One Kafka message in, the worker's outputs out: blocks and single events alike."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from detectors.policy import default_policy
from streams.processor import EventProcessor

T0 = 1_700_000_000.0


def good_block(service: str = "chat", n: int = 3, first: int = 0) -> dict[str, Any]:
    return {"service": service, "release": "r1",
            "event_id": [f"{service}-{first + i}" for i in range(n)],
            "ts": [T0 + first + i for i in range(n)],
            "metrics": {"error": [0] * n, "latency_ms": [120.0] * n}}


def handle(items: list[Any], key: bytes | None = b"chat") -> tuple[int, list[str]]:
    processor = EventProcessor(default_policy(), b"secret", clock=lambda: T0)
    _, out = processor.handle(key, orjson.dumps(items), None, None)
    return out.events, [orjson.loads(d)["reason"] for d in out.dead]


@pytest.mark.parametrize(
    ("items", "events", "reasons"),
    [
        ([good_block(), good_block(first=3)], 6, []),
        ([good_block(), {**good_block(first=3), "ts": [T0, T0]}], 3, ["bad_block"]),
        ([{**good_block(), "metrics": {"error": [0, 3, 1]}}], 2, ["metric_out_of_range"]),
        ([{**good_block(), "event_id": ["a", None, ""]}], 1, ["missing_event_id", "bad_event_id"]),
        ([good_block(), good_block("other", first=3)], 3, ["key_mismatch"]),
        ([good_block(), {"event_id": "one", "ts": T0 + 9, "service": "chat", "release": "r1",
                         "metrics": {"error": 1}}], 4, []),
    ],
)
def test_each_bad_event_of_a_message_is_a_dead_letter_and_the_rest_count(
        items: list[Any], events: int, reasons: list[str]) -> None:
    """Blocks and single events mix in one message; only what is bad is set aside."""
    counted, dead = handle(items)
    assert dead == reasons
    assert counted == events


def test_a_block_sent_twice_is_counted_once() -> None:
    """A producer's retry of a whole block is dropped by the dedupe, event by event."""
    processor = EventProcessor(default_policy(), b"secret")
    for _ in range(2):
        processor.handle(b"chat", orjson.dumps([good_block()]), None, None)
    assert processor.monitors["chat"].counts["duplicates"] == 3


def test_an_unkeyed_message_of_blocks_uses_the_blocks_service() -> None:
    """Producers without keys still get their blocks counted for the named service."""
    processor = EventProcessor(default_policy(), b"secret")
    service, out = processor.handle(None, orjson.dumps([good_block("solo")]), None, None)
    assert (service, out.events, out.dead) == ("solo", 3, [])
    assert processor.monitors["solo"].counts["duplicates"] == 0
