"""Undecodable record batches: aiokafka's real record iterator, with the guard installed,
yields one stand-in per bad batch and notes it, and reads every good batch as before."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition

from rollguard.streams import undecodable

TP = TopicPartition("events", 3)
ATTRIBUTES = 21  # byte offset of a v2 batch's attributes; the CRC covers from here on


def batch(base: int, count: int) -> bytearray:
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1_000_000)
    for i in range(count):
        builder.append(i, timestamp=1_000, key=b"svc", value=b"v%d" % (base + i), headers=[])
    raw = builder.build()
    raw[0:8] = struct.pack(">q", base)
    return raw


def bad_crc(raw: bytearray) -> bytearray:
    raw[-1] ^= 0xFF
    return raw


def unknown_codec(raw: bytearray) -> bytearray:
    attributes = struct.unpack_from(">h", raw, ATTRIBUTES)[0]
    struct.pack_into(">h", raw, ATTRIBUTES, attributes | 0x07)  # codec 7 does not exist
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[ATTRIBUTES:])))
    return raw


@pytest.fixture(autouse=True)
def guarded() -> Iterator[None]:
    saved = fetcher.PartitionRecords
    undecodable.install()
    yield
    fetcher.PartitionRecords = saved


def read(data: bytes, fetch_offset: int = 0) -> list[tuple[int, bytes | None]]:
    records = fetcher.PartitionRecords(TP, MemoryRecords(data), None, fetch_offset,
                                       None, None, True, 0)
    return [(r.offset, r.value) for r in records]


@pytest.mark.parametrize(("spoil", "reason"), [(bad_crc, "CorruptRecordException"),
                                               (unknown_codec, "UnsupportedCodecError")])
def test_a_bad_batch_between_good_ones_becomes_one_noted_stand_in(spoil, reason) -> None:
    data = bytes(batch(0, 2) + spoil(batch(2, 3)) + batch(5, 1))
    assert read(data) == [(0, b"v0"), (1, b"v1"), (2, b""), (5, b"v5")]
    found = undecodable.take("events", 3, 2)
    assert found is not None and (found.first, found.last) == (2, 4)
    assert found.reason.startswith(reason)
    assert undecodable.take("events", 3, 2) is None  # taken once
    assert undecodable.take("events", 3, 5) is None  # an ordinary record


def test_a_fetch_starting_inside_a_bad_batch_stands_in_from_there() -> None:
    data = bytes(unknown_codec(batch(10, 5)))
    assert read(data, fetch_offset=12) == [(12, b"")]
    found = undecodable.take("events", 3, 12)
    assert found is not None and (found.first, found.last) == (12, 14)


def test_good_batches_read_as_without_the_guard() -> None:
    data = bytes(batch(0, 3) + batch(3, 2))
    assert read(data) == [(i, b"v%d" % i) for i in range(5)]


def test_every_codec_can_be_read_here() -> None:
    assert undecodable.missing_codecs() == []
