"""Each trace on the partition the Collector's keyed kafka exporter picks; a request split by
partition keeps every record, its resource and its scope."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollguard.streams.otlp_http.bodies import LOGS, TRACES
from rollguard.streams.otlp_http.placement import by_partition, trace_partition
from tests.support.otlp import evaluation, genai_span, logs, traces

# Computed by Go: hash/fnv New32a of the hex id, int32(h) % n, negated when negative — what
# franz-go's SaramaCompatHasher does with the kafka exporter's default hasher.
GO_PLACEMENTS = [
    ("5b8efff798038103d269b633813fc60c", 7, 1),
    ("00000000000000000000000000000001", 7, 6),
    ("ffffffffffffffffffffffffffffffff", 7, 4),
    ("a1b2c3d4e5f60718293a4b5c6d7e8f90", 7, 1),
    ("6513270e269e0d37f2a74de452e6b438", 3, 0),
    ("d23f0824128b2f330c5c7fd0a6a3a450", 3, 2),
    ("9531985d5d9dc9f81818e811892f902b", 3, 2),
    ("36f675cc81e74ef5e8e25d940ed90475", 3, 1),
    ("6513270e269e0d37f2a74de452e6b438", 12, 0),
    ("d23f0824128b2f330c5c7fd0a6a3a450", 12, 8),
    ("9531985d5d9dc9f81818e811892f902b", 12, 8),
    ("36f675cc81e74ef5e8e25d940ed90475", 12, 7),
    ("6b0d549b6f03675a1600a35a099950d8", 12, 2),
    ("8d116ece1738f7d93d9c172411e20b8f", 12, 7),
]


@pytest.mark.parametrize(("trace", "partitions", "expected"), GO_PLACEMENTS)
def test_a_trace_goes_where_the_collectors_sarama_compatible_hasher_puts_it(
        trace: str, partitions: int, expected: int) -> None:
    assert trace_partition(bytes.fromhex(trace), partitions) == expected


traces_ids = st.lists(st.binary(min_size=16, max_size=16) | st.just(b""), min_size=1,
                      max_size=30)


@given(ids=traces_ids, partitions=st.integers(1, 12))
def test_a_split_request_keeps_every_record_once_each_on_its_traces_partition(
        ids: list[bytes], partitions: int) -> None:
    records = [evaluation(trace=t.hex(), response__id=str(i)) for i, t in enumerate(ids)]
    request = logs(({"service.name": "a"}, records[::2]), ({"service.name": "b"}, records[1::2]))
    groups = by_partition(LOGS, request, partitions)
    seen = []
    for where, part in groups.items():
        for resource in part.resource_logs:
            service = resource.resource.attributes[0].value.string_value
            for scope in resource.scope_logs:
                for record in scope.log_records:
                    number = int(record.attributes[-1].value.string_value)
                    assert service == ("a" if number % 2 == 0 else "b")
                    assert where == (trace_partition(record.trace_id, partitions)
                                     if record.trace_id else None)
                    seen.append(number)
    assert sorted(seen) == list(range(len(ids)))


def test_a_request_whose_records_share_a_partition_is_written_whole() -> None:
    trace = "5b8efff798038103d269b633813fc60c"
    request = traces(({"service.name": "chat"}, [genai_span(trace, "eee19b7ec3c1b174"),
                                                 genai_span(trace, "0123456789abcdef")]))
    assert by_partition(TRACES, request, 7) == {1: request}


def test_records_without_a_trace_go_where_the_producer_puts_them() -> None:
    request = logs(({"service.name": "chat"}, [evaluation(), evaluation()]))
    assert list(by_partition(LOGS, request, 4)) == [None]
