"""Where ``rollguard otlp`` writes a request's records: each trace on one partition, the one
the Collector's kafka exporter picks when keyed by trace id (``partition_traces_by_id``,
``partition_logs_by_trace_id``, its default ``sarama_compat`` hasher: FNV-1a of the
lowercase hex trace id). A span and the evaluation of it then reach the same partition
number of the spans and the logs topics, which one worker holds, so the worker's join finds
them whichever process sent them, a Collector or ``rollguard otlp``.

Unlike the exporter, which writes one message per trace, a request becomes one message per
partition it touches: the records of many traces travel together. Records without a trace
id go wherever the producer puts them (``None``).

>>> trace_partition(bytes.fromhex("5b8efff798038103d269b633813fc60c"), 7)
1
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence

import numpy as np
from google.protobuf.message import Message

from rollguard.streams.otlp_http.bodies import Signal

_FNV_OFFSET, _FNV_PRIME = 0x811C9DC5, 0x01000193


def fnv1a_32(data: bytes) -> int:
    """FNV-1a, 32 bits (Go's ``hash/fnv.New32a``)."""
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def trace_partition(trace_id: bytes, partitions: int) -> int:
    """The partition of a trace, as franz-go's ``SaramaCompatHasher``: the hash read as a
    signed 32-bit number, modulo the count (Go's truncated remainder), made positive."""
    value = fnv1a_32(trace_id.hex().encode())
    signed = value - (1 << 32) if value & 0x80000000 else value
    return abs(signed) % partitions  # |a % n| in Go (truncated) is |a| % n


def trace_partitions(trace_ids: Sequence[bytes], partitions: int) -> list[int | None]:
    """:func:`trace_partition` of many ids at once (``None`` for an empty id): FNV-1a over
    the hex digits column by column, 32-bit arithmetic wrapping as Go's does."""
    places: list[int | None] = [None] * len(trace_ids)
    whole = [i for i, trace_id in enumerate(trace_ids) if len(trace_id) == 16]
    if not whole:
        return places
    digits = np.frombuffer(binascii.hexlify(b"".join(trace_ids[i] for i in whole)),
                           dtype=np.uint8).reshape(len(whole), 32).astype(np.uint32)
    value = np.full(len(whole), _FNV_OFFSET, dtype=np.uint32)
    for column in digits.T:
        value = (value ^ column) * np.uint32(_FNV_PRIME)
    found = np.abs(value.view(np.int32).astype(np.int64)) % partitions
    for i, where in zip(whole, found.tolist(), strict=True):
        places[i] = where
    return places


def by_partition(signal: Signal, request: Message,
                 partitions: int) -> dict[int | None, Message]:
    """``request``'s records grouped by the partition of their trace, each group a request of
    its own with the records' resources and scopes; ``request`` itself when all share one."""
    resources, scopes, records = signal.levels
    tree = [(resource, [(scope, getattr(scope, records)) for scope in getattr(resource, scopes)])
            for resource in getattr(request, resources)]
    ids = [record.trace_id for _, scoped in tree for _, listed in scoped for record in listed]
    places = trace_partitions(ids, partitions)
    if len(set(places)) <= 1:
        return {places[0] if places else None: request}
    groups: dict[int | None, Message] = {}
    at = iter(places)
    for resource, scoped in tree:
        parts: dict[int | None, list[tuple[Message, list[Message]]]] = {}
        for scope, listed in scoped:
            by_place: dict[int | None, list[Message]] = {}
            for record in listed:
                by_place.setdefault(next(at), []).append(record)
            for where, chosen in by_place.items():
                parts.setdefault(where, []).append((scope, chosen))
        for where, chosen_scopes in parts.items():
            _add(signal, groups.setdefault(where, signal.request()), resource, chosen_scopes)
    return groups


def _add(signal: Signal, request: Message, resource: Message,
         scoped: list[tuple[Message, list[Message]]]) -> None:
    """Append to ``request`` a copy of ``resource`` holding only the ``scoped`` records."""
    resources, scopes, records = signal.levels
    copy = getattr(request, resources).add()
    copy.resource.CopyFrom(resource.resource)
    copy.schema_url = resource.schema_url
    for scope, chosen in scoped:
        scope_copy = getattr(copy, scopes).add()
        scope_copy.scope.CopyFrom(scope.scope)
        scope_copy.schema_url = scope.schema_url
        getattr(scope_copy, records).extend(chosen)
