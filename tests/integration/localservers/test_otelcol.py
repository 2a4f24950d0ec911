"""The real OpenTelemetry Collector, built and started by the project's own script
(localservers/otelcol.py), receives OTLP/HTTP from the real Python SDK and its kafka
exporter writes the records to the topics rollguard reads, in both encodings; kcat, another
Kafka client, reads the same messages."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from localservers.otelcol import Collector, http_answers
from localservers.otelcol_build import collector_binary
from localservers.packages import kcat_binary
from rollguard.base.config import Address, kafka_bootstrap
from rollguard.streams.settings import DEFAULT_OTLP_LOGS
from tests.support.otel import EVENT, evaluation, export, tail
from tests.support.ports import free_port

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


def documented_config() -> str:
    """The Collector configuration of docs/opentelemetry.md, as written there."""
    page = (Path(__file__).parents[3] / "docs" / "opentelemetry.md").read_text()
    section = page.split("## A Collector configuration that works as written", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


@pytest.fixture(name="documented")
def fixture_documented(otelcol: Collector, tmp_path: Path) -> Iterator[str]:
    """The documented configuration run by the Collector binary, only its addresses set
    on the command line; its OTLP/HTTP base URL."""
    config = tmp_path / "config.yaml"
    config.write_text(documented_config())
    http, grpc = free_port(), free_port()
    process = subprocess.Popen(
        [str(collector_binary()), "--config", str(config),
         f"--set=exporters.kafka.brokers=[{kafka_bootstrap()}]",
         f"--set=receivers.otlp.protocols.http.endpoint=127.0.0.1:{http}",
         f"--set=receivers.otlp.protocols.grpc.endpoint=127.0.0.1:{grpc}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "otelcol.log").open("wb"))
    try:
        deadline = time.monotonic() + 30
        while not http_answers(Address("127.0.0.1", http)):
            assert process.poll() is None, (tmp_path / "otelcol.log").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        yield f"http://127.0.0.1:{http}"
    finally:
        process.terminate()
        process.wait(30)


async def test_the_documented_collector_configuration_works_as_written(documented: str) -> None:
    """The SDK's records arrive; and 3,000 records of one request (1 MB, the batch
    processor's default would send them as one message the broker refuses) arrive in
    messages the broker takes."""
    sent = evaluation()
    many = many_records(3000)
    async with tail(DEFAULT_OTLP_LOGS) as logs:
        assert await asyncio.to_thread(export, documented, sent) == (True, True)
        await logs.until(lambda v: proto_log(v, sent.marker) is not None)
        async with aiohttp.ClientSession() as session, session.post(
                f"{documented}/v1/logs", data=many[1],
                headers={"Content-Type": "application/x-protobuf"}) as answer:
            assert answer.status == 200
        seen = 0
        while seen < 3000:
            value = await logs.until(lambda v: many[0].encode() in v)
            assert len(value) <= 1_000_000
            seen += len(ExportLogsServiceRequest.FromString(value).resource_logs[0]
                        .scope_logs[0].log_records)
    assert seen == 3000


def many_records(count: int) -> tuple[str, bytes]:
    """A marker and a request of ``count`` evaluation records of about 340 bytes."""
    marker = uuid.uuid4().hex
    request = ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    resource.resource.attributes.add(key="test.marker").value.string_value = marker
    scope = resource.scope_logs.add()
    for number in range(count):
        record = scope.log_records.add(event_name=EVENT, time_unix_nano=number + 1)
        record.attributes.add(key="gen_ai.evaluation.explanation").value.string_value = (
            "grounded in the retrieved passage " * 8)
    assert len(request.SerializeToString()) > 1_000_000
    return marker, request.SerializeToString()
