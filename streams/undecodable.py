"""Record batches the Kafka client cannot decode become dead letters, not a crashed worker.

Why: aiokafka decodes a fetched record batch while Faust iterates it, inside the fetcher. A
batch it cannot read (a codec whose library is missing, an unknown codec, a bad CRC, records
that do not parse) raises there, Faust's consumer crashes, and after a restart it fetches the
same batch and crashes again: a crash loop that ends only when someone moves the offsets.

:func:`install` wraps aiokafka's per-partition record iterator (for every consumer in this
process; call it once before the worker starts) so that such a batch yields one stand-in
record instead, at the first offset of the batch not yet read, with an empty value and no
key; the batch's offsets, partition and the client's error are noted here, and the agent
takes them with :func:`take` and dead-letters them. The stand-in cannot be forged by a
producer: what marks it is this process's note, not anything in the message. The consumer's
position then moves past the batch, as it would after reading it.

:func:`missing_codecs` says which compression codecs this process cannot read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import codec
from aiokafka.consumer import fetcher

log = logging.getLogger(__name__)
MAX_NOTED = 10_000  # stand-ins fetched but never delivered (a rebalance) are dropped past this


@dataclass(frozen=True)
class Undecodable:
    """Offsets ``first``..``last`` of ``partition`` of ``topic`` could not be decoded."""

    topic: str
    partition: int
    first: int
    last: int
    reason: str


_noted: dict[tuple[str, int, int], Undecodable] = {}


def missing_codecs() -> list[str]:
    """The compression codecs this process cannot decode (they need the cramjam package)."""
    checks = {"snappy": codec.has_snappy, "lz4": codec.has_lz4, "zstd": codec.has_zstd}
    return [name for name, has in checks.items() if not has()]


def take(topic: str, partition: int, offset: int) -> Undecodable | None:
    """The undecodable batch a delivered record stands for (None: an ordinary record)."""
    if not _noted:
        return None
    return _noted.pop((topic, partition, offset), None)


def _note(found: Undecodable) -> None:
    if len(_noted) >= MAX_NOTED:
        _noted.pop(next(iter(_noted)))
    _noted[(found.topic, found.partition, found.first)] = found


@dataclass(frozen=True)
class _StandIn:
    """What aiokafka's record iterator reads from a record (see ``_consumer_record``)."""

    offset: int
    timestamp: int
    timestamp_type: int = 0
    key: bytes | None = None
    value: bytes = b""
    checksum: int | None = None
    headers: tuple[Any, ...] = ()


class _GuardedBatch:
    """A record batch whose records, or one stand-in when they cannot be read."""

    def __init__(self, batch: Any, owner: GuardedPartitionRecords) -> None:
        self._batch = batch
        self._owner = owner
        self._crc_ok = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __next__(self) -> Any:  # aiokafka reads control records with next()
        return next(self._batch)

    def validate_crc(self) -> bool:
        self._crc_ok = bool(self._batch.validate_crc())
        return True  # a bad CRC becomes a stand-in below, not an exception

    def __iter__(self) -> Iterator[Any]:
        after = -1
        try:
            if not self._crc_ok:
                raise fetcher.Errors.CorruptRecordException("invalid CRC")
            for record in self._batch:
                after = record.offset
                yield record
        except Exception as exc:  # whatever breaks the client on this batch
            yield self._stand_in(after, f"{type(exc).__name__}: {exc}")

    def _stand_in(self, after: int, reason: str) -> _StandIn:
        batch, tp = self._batch, self._owner._tp
        first = max(after + 1, getattr(batch, "base_offset", 0), self._owner.next_fetch_offset)
        last = max(first, batch.next_offset - 1)
        log.error("undecodable records %s[%d] offsets %d..%d: %s",
                  tp.topic, tp.partition, first, last, reason)
        _note(Undecodable(tp.topic, tp.partition, first, last, reason))
        return _StandIn(first, getattr(batch, "max_timestamp", 0) or 0)


class _GuardedRecords:
    def __init__(self, records: Any, owner: GuardedPartitionRecords) -> None:
        self._records = records
        self._owner = owner

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> _GuardedBatch:
        return _GuardedBatch(self._records.next_batch(), self._owner)


class GuardedPartitionRecords(fetcher.PartitionRecords):
    """aiokafka's fetched records of one partition, with undecodable batches guarded."""

    def __init__(self, tp: Any, records: Any, *args: Any) -> None:
        super().__init__(tp, records, *args)
        # The record iterator is a generator that reads self._records on first use.
        self._records = _GuardedRecords(records, self)


def install() -> None:
    """Guard every aiokafka consumer of this process; say which codecs cannot be read."""
    fetcher.PartitionRecords = GuardedPartitionRecords
    missing = missing_codecs()
    if missing:
        log.error("compression codecs %s cannot be decoded (install the cramjam package): "
                  "messages compressed with them go to the dead-letter topic unread",
                  ", ".join(missing))
