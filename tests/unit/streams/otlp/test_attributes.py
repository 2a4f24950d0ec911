"""Attributes read from their bytes (streams/otlp/attributes.py) equal what reading each
``KeyValue`` as a protobuf object gives, however the ``KeyValue`` was written."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from rollguard.streams.otlp.attributes import any_value, wanted
from rollguard.streams.otlp.records import WANTED
from tests.support.otlp import any_value as to_any

KEY = b"\n\x16gen_ai.evaluation.name"  # the key field of gen_ai.evaluation.name


def as_objects(pairs: list[bytes]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for pair in pairs:
        parsed = KeyValue.FromString(pair)
        if parsed.key in WANTED:
            found[parsed.key] = any_value(parsed.value)
    return found


def written(key: str, value: Any) -> bytes:
    return KeyValue(key=key, value=to_any(value)).SerializeToString()


VALUES = ["pass", "", "é" * 70, 0.25, float("inf"), 0, 7, 900, 2**40, -3, True, False,
          ["a", 1]]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_every_kind_of_value_reads_as_the_object_reads(value: Any) -> None:
    pairs = [written("gen_ai.evaluation.name", value), written("other", value)]
    assert repr(wanted(pairs)) == repr(as_objects(pairs))


ODD = {
    "value before key": b"\x12\x06\n\x04pass" + KEY,
    "the key twice, an unwanted one last": KEY + b"\x12\x06\n\x04pass\n\x01x",
    "an unwanted key, then a wanted one": b"\n\x01x\x12\x06\n\x04pass" + KEY,
    "a length as a two-byte varint": b"\n\x96\x00gen_ai.evaluation.name\x12\x06\n\x04pass",
    "no value": KEY,
    "an empty value": KEY + b"\x12\x00",
    "two kinds in one value, the last wins": KEY + b"\x12\x0f\n\x04pass!" + bytes(8),
    "a long value": KEY + b"\x12\x83\x01\n\x80\x01" + b"x" * 128,
    "an unknown field in the value": KEY + b"\x12\x08\n\x04pass\x50\x01",
    "a bool of 2": KEY + b"\x12\x02\x10\x02",
    "an empty KeyValue": b"",
}


@pytest.mark.parametrize("pair", list(ODD.values()), ids=list(ODD))
def test_a_keyvalue_written_any_other_way_reads_as_the_object_reads(pair: bytes) -> None:
    pairs = [written("gen_ai.evaluation.name", "first"), pair]
    assert repr(wanted(pairs)) == repr(as_objects(pairs))
