"""``rollguard otlp`` on the real broker: the real SDK's OTLP/HTTP exporters (plain, gzip,
deflate) and OTLP JSON bodies are written to Kafka as the Collector's kafka exporter writes
them, and every answer of the OTLP specification comes when it should. Kafka going away (503,
the SDK retrying) is in test_broker_restart_e2e.py, on a private broker."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from tests.support.otel import EVENT, Receiver, evaluation, export, running_otlp, tail

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

MAX_BODY = 256 * 1024
MAX_MESSAGE = 4096
PROTOBUF, JSON = "application/x-protobuf", "application/json"


@pytest.fixture(name="receiver", scope="module")
def fixture_receiver() -> Iterator[Receiver]:
    with running_otlp(ROLLGUARD_OTLP_MAX_BODY_BYTES=str(MAX_BODY),
                      ROLLGUARD_OTLP_MAX_MESSAGE_BYTES=str(MAX_MESSAGE)) as receiver:
        yield receiver


def logs_of(value: bytes) -> list[LogRecord]:
    request = ExportLogsServiceRequest.FromString(value)
    return [record for resource in request.resource_logs for scope in resource.scope_logs
            for record in scope.log_records]


def response_id(record: LogRecord) -> str:
    return next((a.value.string_value for a in record.attributes
                 if a.key == "gen_ai.response.id"), "")


async def post(url: str, body: bytes, content_type: str | None,
               method: str = "POST", **headers: str) -> tuple[int, bytes, Any]:
    if content_type:
        headers["Content-Type"] = content_type
    async with aiohttp.ClientSession() as session, session.request(
            method, url, data=body, headers=headers) as answer:
        return answer.status, await answer.read(), answer.headers


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip,
                                         Compression.Deflate])
async def test_the_sdk_exporters_records_reach_kafka(receiver: Receiver,
                                                     compression: Compression) -> None:
    sent = evaluation(records=3)
    async with tail(receiver.topic_logs) as logs, tail(receiver.topic_spans) as spans:
        assert await asyncio.to_thread(export, receiver.url, sent,
                                       compression=compression) == (True, True)
        value = await logs.until(lambda v: sent.marker.encode() in v)
        span_value = await spans.until(lambda v: sent.marker.encode() in v)
    records = [r for r in logs_of(value) if response_id(r) == sent.marker]
    assert len(records) == 3  # one request, one message, as the Collector's exporter writes
    assert {(r.event_name, r.span_id.hex(), r.trace_id.hex()) for r in records} == {
        (EVENT, sent.span_id, sent.trace_id)}
    trace = ExportTraceServiceRequest.FromString(span_value)
    (span,) = [s for r in trace.resource_spans for sc in r.scope_spans for s in sc.spans]
    assert (span.span_id.hex(), span.name) == (sent.span_id, "chat m-2.4")


def json_logs(marker: str, *records: dict[str, Any]) -> bytes:
    """An OTLP JSON logs request, as an SDK or the Collector's otlp_json writes it."""
    return orjson.dumps({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": "support-bot"}}]},
        "scopeLogs": [{"scope": {"name": "rollguard.eval"}, "logRecords": [
            {"timeUnixNano": "1765074000000000000", "severityNumber": 9, "body": {},
             "attributes": [{"key": "gen_ai.response.id", "value": {"stringValue": marker}}],
             "eventName": EVENT, **record} for record in records]}]}]})


async def test_an_otlp_json_body_is_written_as_otlp_proto(receiver: Receiver) -> None:
    marker = "json-" + evaluation().marker
    body = json_logs(marker, {"traceId": "5b8efff798038103d269b633813fc60c",
                              "spanId": "eee19b7ec3c1b174"})
    async with tail(receiver.topic_logs) as logs:
        status, answer, headers = await post(f"{receiver.url}/v1/logs", body, JSON)
        value = await logs.until(lambda v: marker.encode() in v)
    assert (status, headers["Content-Type"], orjson.loads(answer)) == (200, JSON, {})
    (record,) = logs_of(value)
    assert (record.trace_id.hex(), record.span_id.hex()) == (
        "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
    assert (record.time_unix_nano, record.severity_number, record.event_name) == (
        1765074000000000000, 9, EVENT)


async def test_an_otlp_json_traces_body(receiver: Receiver) -> None:
    body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "", "name": "chat", "kind": 3, "startTimeUnixNano": "1",
        "endTimeUnixNano": "2"}]}]}]})
    async with tail(receiver.topic_spans) as spans:
        status, answer, _ = await post(f"{receiver.url}/v1/traces", body, JSON)
        value = await spans.until(lambda v: bytes.fromhex("eee19b7ec3c1b174") in v)
    assert (status, orjson.loads(answer)) == (200, {})
    span = ExportTraceServiceRequest.FromString(value).resource_spans[0].scope_spans[0].spans[0]
    assert (span.name, span.kind, span.end_time_unix_nano) == ("chat", 3, 2)


async def test_records_with_bad_ids_are_rejected_with_partial_success(
        receiver: Receiver) -> None:
    marker = "partial-" + evaluation().marker
    body = json_logs(marker, {"spanId": "eee19b7ec3c1b174"}, {"spanId": "not-hex"},
                     {"traceId": "5b8e"})
    async with tail(receiver.topic_logs) as logs:
        status, answer, _ = await post(f"{receiver.url}/v1/logs", body, JSON)
        value = await logs.until(lambda v: marker.encode() in v)
    assert status == 200
    partial = orjson.loads(answer)["partialSuccess"]
    assert partial["rejectedLogRecords"] == "2"  # int64: a string in OTLP JSON
    assert "wrong length" in partial["errorMessage"]
    assert [r.span_id.hex() for r in logs_of(value)] == ["eee19b7ec3c1b174"]
    # the same in protobuf: a span id of 7 bytes
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    scope.log_records.add(span_id=b"\x01" * 7, event_name=EVENT)
    status, answer, headers = await post(f"{receiver.url}/v1/logs",
                                         request.SerializeToString(), PROTOBUF)
    reply = ExportLogsServiceResponse.FromString(answer)
    assert (status, headers["Content-Type"]) == (200, PROTOBUF)
    assert reply.partial_success.rejected_log_records == 1


async def test_a_request_over_a_kafka_message_is_split_and_an_oversized_record_rejected(
        receiver: Receiver) -> None:
    """Records of 1 KB, 40 of them, against messages of at most 4 KB: several messages,
    each a whole request of some of them; one record of 8 KB is left out (partial)."""
    marker = "split-" + evaluation().marker
    request = ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "support-bot"
    scope = resource.scope_logs.add()
    for number in range(41):
        record = scope.log_records.add(event_name=EVENT, time_unix_nano=number + 1)
        record.attributes.add(key="gen_ai.response.id").value.string_value = marker
        record.body.string_value = "x" * (8192 if number == 20 else 1000)
    seen: list[int] = []
    async with tail(receiver.topic_logs) as logs:
        status, answer, _ = await post(f"{receiver.url}/v1/logs",
                                       request.SerializeToString(), PROTOBUF)
        assert status == 200
        while len(seen) < 40:
            value = await logs.until(lambda v: marker.encode() in v)
            assert len(value) <= MAX_MESSAGE
            seen += [r.time_unix_nano for r in logs_of(value)]
    assert sorted(seen) == [n + 1 for n in range(41) if n != 20]
    assert ExportLogsServiceResponse.FromString(answer).partial_success.rejected_log_records == 1


@pytest.mark.parametrize(("path", "body", "content_type", "method", "status"), [
    ("/v1/logs", b"\xff\xff\xff\xff", PROTOBUF, "POST", 400),
    ("/v1/logs", b"not json", JSON, "POST", 400),
    ("/v1/traces", b"[1, 2]", JSON, "POST", 400),
    ("/v1/logs", b"{}", "text/plain", "POST", 415),
    ("/v1/logs", b"", None, "POST", 415),
    ("/v1/metrics", b"", PROTOBUF, "POST", 404),
    ("/", b"", None, "GET", 404),
    ("/v1/logs", b"", None, "GET", 405),
    ("/v1/logs", b"\x00" * (MAX_BODY + 1), PROTOBUF, "POST", 413),
])
async def test_error_statuses(receiver: Receiver, path: str, body: bytes,
                              content_type: str | None, method: str, status: int) -> None:
    got, answer, headers = await post(receiver.url + path, body, content_type, method)
    assert got == status
    if status in (400, 413):  # a google.rpc.Status in the request's content type
        assert headers["Content-Type"] == content_type
        message = (orjson.loads(answer)["message"] if content_type == JSON
                   else Status.FromString(answer).message)
        assert message


async def test_a_gzip_body_over_the_limit_once_decompressed_is_413(receiver: Receiver) -> None:
    """A small compressed body that decompresses past the limit (a zip bomb) is refused."""
    body = gzip.compress(b"\x00" * (MAX_BODY * 4))
    assert len(body) < MAX_BODY
    status, answer, _ = await post(f"{receiver.url}/v1/logs", body, PROTOBUF,
                                   **{"Content-Encoding": "gzip"})
    assert status == 413
    assert "exceeds" in Status.FromString(answer).message


async def test_otlp_json_encoding_writes_what_the_collectors_otlp_json_writes() -> None:
    sent = evaluation()
    with running_otlp(ROLLGUARD_OTLP_ENCODING="otlp_json") as receiver:
        async with tail(receiver.topic_logs) as logs, tail(receiver.topic_spans) as spans:
            assert await asyncio.to_thread(export, receiver.url, sent) == (True, True)
            value = await logs.until(lambda v: sent.marker.encode() in v)
            span_value = await spans.until(lambda v: sent.span_id.encode() in v)
    document = orjson.loads(value)
    record = document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert (record["eventName"], record["spanId"], record["traceId"]) == (
        EVENT, sent.span_id, sent.trace_id)
    assert isinstance(record["timeUnixNano"], str)
    span = orjson.loads(span_value)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert (span["spanId"], span["traceId"], span["kind"]) == (sent.span_id, sent.trace_id, 1)
