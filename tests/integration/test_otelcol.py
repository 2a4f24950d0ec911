"""The real OpenTelemetry Collector, built and started by the project's own script
(localservers/otelcol.py), receives OTLP/HTTP from the real Python SDK and its kafka
exporter writes the records to the topics rollguard reads, in both encodings; kcat, another
Kafka client, reads the same messages."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from localservers.otelcol import Collector
from localservers.packages import kcat_binary
from rollguard.base.config import kafka_bootstrap
from tests.support.otel import EVENT, evaluation, export, tail

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]


def proto_log(value: bytes, marker: str) -> tuple[dict[str, object], object] | None:
    """The resource's attributes and the record of ``marker`` in an otlp_proto message."""
    request = ExportLogsServiceRequest.FromString(value)
    for resource in request.resource_logs:
        for scope in resource.scope_logs:
            for record in scope.log_records:
                attributes = {a.key: a.value.string_value for a in record.attributes}
                if attributes.get("gen_ai.response.id") == marker:
                    found = resource.resource.attributes
                    return {a.key: a.value.string_value for a in found}, record
    return None


def json_records(value: bytes, levels: tuple[str, str, str]) -> list[dict[str, Any]]:
    document = orjson.loads(value)
    return [record for resource in document.get(levels[0], ())
            for scope in resource.get(levels[1], ()) for record in scope.get(levels[2], ())]


def attribute(record: dict[str, Any], key: str) -> object:
    for item in record.get("attributes", ()):
        if item["key"] == key:
            return next(iter(item["value"].values()))
    return None


async def test_sdk_to_collector_to_kafka_otlp_proto(otelcol: Collector) -> None:
    sent = evaluation()
    async with tail(otelcol.logs_topic) as logs, tail(otelcol.spans_topic) as spans:
        assert await asyncio.to_thread(export, otelcol.endpoint, sent) == (True, True)
        value = await logs.until(lambda v: proto_log(v, sent.marker) is not None)
        span_value = await spans.until(lambda v: sent.marker.encode() in v)
    found = proto_log(value, sent.marker)
    assert found is not None
    resource, record = found
    assert resource["service.name"] == "support-bot"
    assert record.event_name == EVENT  # type: ignore[attr-defined]
    assert record.span_id.hex() == sent.span_id  # type: ignore[attr-defined]
    trace = ExportTraceServiceRequest.FromString(span_value)
    span = next(s for r in trace.resource_spans for sc in r.scope_spans for s in sc.spans
                if s.span_id.hex() == sent.span_id)
    assert span.trace_id.hex() == sent.trace_id
    assert span.name == "chat m-2.4"


async def test_sdk_to_collector_to_kafka_otlp_json(otelcol_json: Collector) -> None:
    sent = evaluation()
    async with tail(otelcol_json.logs_topic) as logs, tail(otelcol_json.spans_topic) as spans:
        assert await asyncio.to_thread(export, otelcol_json.endpoint, sent) == (True, True)
        value = await logs.until(lambda v: sent.marker.encode() in v)
        span_value = await spans.until(lambda v: sent.span_id.encode() in v)
    record = next(r for r in json_records(value, ("resourceLogs", "scopeLogs", "logRecords"))
                  if attribute(r, "gen_ai.response.id") == sent.marker)
    # OTLP's JSON: hex ids, eventName a field, 64-bit times as strings
    assert (record["eventName"], record["spanId"], record["traceId"]) == (
        EVENT, sent.span_id, sent.trace_id)
    assert isinstance(record["timeUnixNano"], str)
    span = next(s for s in json_records(span_value, ("resourceSpans", "scopeSpans", "spans"))
                if s["spanId"] == sent.span_id)
    assert span["traceId"] == sent.trace_id


async def test_kcat_reads_what_the_collector_wrote(otelcol: Collector) -> None:
    """Another Kafka client (librdkafka's kcat) reads the exporter's message: the bytes are
    an ExportLogsServiceRequest for it too."""
    sent = evaluation()
    async with tail(otelcol.logs_topic) as logs:
        assert (await asyncio.to_thread(export, otelcol.endpoint, sent))[0]
        value = await logs.until(lambda v: proto_log(v, sent.marker) is not None)
    # kcat prints each message's partition and offset; the one aiokafka read is among the last
    listing = subprocess.run(
        [kcat_binary(), "-b", kafka_bootstrap(), "-t", otelcol.logs_topic, "-C", "-e",
         "-o", "-20", "-f", "%s\\n---rollguard---\\n"], capture_output=True, timeout=60,
        check=True).stdout
    messages = listing.split(b"\n---rollguard---\n")
    assert value in messages
    assert any(proto_log(m, sent.marker) for m in messages if m)
