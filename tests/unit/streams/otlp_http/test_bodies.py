"""OTLP/HTTP bodies to Kafka messages (rollguard otlp): ids between OTLP JSON and protobuf,
records left out, and requests split into messages of whole resources, scopes, records."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from rollguard.base.errors import InvalidEvent
from rollguard.streams.otlp_http.bodies import (
    JSON,
    LOGS,
    PROTOBUF,
    TRACES,
    count_records,
    decode,
    encode,
    split,
)


def logs_request(shape: list[list[int]], size: int = 100) -> ExportLogsServiceRequest:
    """Resources of scopes of ``n`` records each; every record's body names its place."""
    request = ExportLogsServiceRequest()
    for r, scopes in enumerate(shape):
        resource = request.resource_logs.add()
        resource.resource.attributes.add(key="service.name").value.string_value = f"s{r}"
        for s, records in enumerate(scopes):
            scope = resource.scope_logs.add()
            scope.scope.name = f"scope{s}"
            for n in range(records):
                scope.log_records.add().body.string_value = f"{r}/{s}/{n}".ljust(size, ".")
    return request


def places(request: ExportLogsServiceRequest) -> list[tuple[str, str, str]]:
    return [(resource.resource.attributes[0].value.string_value, scope.scope.name,
             record.body.string_value.rstrip("."))
            for resource in request.resource_logs for scope in resource.scope_logs
            for record in scope.log_records]


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.lists(st.integers(0, 12), min_size=1, max_size=4), min_size=1,
                      max_size=4),
       limit=st.integers(300, 3000))
def test_split_keeps_every_record_in_order_with_its_resource_and_scope(
        shape: list[list[int]], limit: int) -> None:
    request = logs_request(shape)
    messages, too_large = split(LOGS, request, "otlp_proto", limit)
    assert too_large == 0  # a record of 100 bytes fits in any limit here
    assert all(len(m) <= limit for m in messages)
    parts = [ExportLogsServiceRequest.FromString(m) for m in messages]
    assert [p for part in parts for p in places(part)] == places(request)


def test_a_record_alone_over_the_limit_is_left_out() -> None:
    request = logs_request([[3]], size=100)
    request.resource_logs[0].scope_logs[0].log_records[1].body.string_value = "x" * 5000
    messages, too_large = split(LOGS, request, "otlp_proto", 1000)
    assert too_large == 1
    assert [place for m in messages
            for place in places(ExportLogsServiceRequest.FromString(m))] == [
        ("s0", "scope0", "0/0/0"), ("s0", "scope0", "0/0/2")]


def test_json_and_protobuf_bodies_read_alike_and_encode_back() -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(name="chat", kind=3)
    span.trace_id, span.span_id = bytes(range(16)), bytes(range(8))
    span.links.add(trace_id=bytes(range(16)), span_id=b"\x07" * 8)
    as_json = encode(request, "otlp_json")
    document = orjson.loads(as_json)
    written = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert written["traceId"] == bytes(range(16)).hex()  # hex, not protobuf JSON's base64
    assert written["links"][0]["spanId"] == "07" * 8
    assert (written["kind"], written["name"]) == (3, "chat")  # enums as integers
    from_json = decode(TRACES, as_json, JSON)
    from_proto = decode(TRACES, request.SerializeToString(), PROTOBUF)
    assert from_json.request == from_proto.request == request
    assert (from_json.kept, from_json.rejected) == (1, 0)


def test_a_link_with_a_bad_id_rejects_its_span() -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    spans.add(name="good", span_id=b"\x01" * 8)
    spans.add(name="bad").links.add(span_id=b"\x01" * 3)
    read = decode(TRACES, request.SerializeToString(), PROTOBUF)
    assert (read.kept, read.rejected) == (1, 1)
    assert count_records(TRACES, read.request) == 1


@pytest.mark.parametrize("body", [b"\xff\xff", b"[]", b'{"resourceLogs": 3}',
                                  b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [1]}]}]}'])
def test_undecodable_bodies(body: bytes) -> None:
    kind = PROTOBUF if body.startswith(b"\xff") else JSON
    with pytest.raises(InvalidEvent, match="undecodable"):
        decode(LOGS, body, kind)
