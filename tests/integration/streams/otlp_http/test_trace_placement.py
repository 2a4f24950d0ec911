"""``rollguard otlp`` and the real Collector (its kafka exporter keyed by trace id, as
docs/opentelemetry.md configures it) writing to the same topic put each trace on the same
partition, so a span sent through one and its evaluation through the other meet in one
worker; ``rollguard otlp`` writes a request as one message per partition, not per trace."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import defaultdict

import aiohttp
import pytest
from aiokafka import TopicPartition
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from localservers.managed import stop_started
from localservers.otelcol import Collector, up_collector
from rollguard.base.config import Address
from rollguard.streams.connect import consumer, ensure_topics
from rollguard.streams.otlp_http.placement import trace_partition
from tests.support.otel import delete_topics, running_otlp
from tests.support.otlp import evaluation, logs
from tests.support.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

PARTITIONS = 5
TRACES = 12


async def post(url: str, request: ExportLogsServiceRequest) -> int:
    async with aiohttp.ClientSession() as session, session.post(
            f"{url}/v1/logs", data=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"}) as answer:
        return answer.status


def request_of(sender: str, trace_ids: list[str], marker: str) -> ExportLogsServiceRequest:
    records = [evaluation(trace=t, span="eee19b7ec3c1b174", sender=sender, marker=marker)
               for t in trace_ids]
    records.append(evaluation(sender=sender, marker=marker))  # no trace: anywhere
    return logs(({"service.name": "support-bot"}, records))


async def read_placements(topic: str, marker: str, wanted: int
                          ) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """(sender, trace id) → partition of every record of ``marker``, and the number of
    messages each sender wrote, once ``wanted`` records are read."""
    placed: dict[tuple[str, str], int] = {}
    messages: dict[str, int] = defaultdict(int)
    async with consumer(enable_auto_commit=False, auto_offset_reset="earliest") as client:
        client.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        async with asyncio.timeout(60):
            while len(placed) < wanted:
                batches = await client.getmany(timeout_ms=500)
                for message in (m for ms in batches.values() for m in ms):
                    senders = set()
                    for record in _records(message.value or b""):
                        found = {a.key: a.value.string_value for a in record.attributes}
                        if found.get("marker") == marker:
                            placed[found["sender"], record.trace_id.hex()] = message.partition
                            senders.add(found["sender"])
                    for sender in senders:
                        messages[sender] += 1
    return placed, dict(messages)


def _records(value: bytes) -> list[LogRecord]:
    request = ExportLogsServiceRequest.FromString(value)
    return [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]


async def test_each_trace_lands_where_the_keyed_collector_puts_it_in_fewer_messages() -> None:
    suffix = uuid.uuid4().hex[:10]
    topic_logs, topic_spans = f"test-place-logs-{suffix}", f"test-place-spans-{suffix}"
    await ensure_topics({topic_logs: PARTITIONS, topic_spans: PARTITIONS})
    trace_ids = [secrets.token_hex(16) for _ in range(TRACES)]
    marker = uuid.uuid4().hex
    collector = up_collector(Collector("otelcol-placement", Address("127.0.0.1", free_port()),
                                       "otlp_proto", topic_logs, topic_spans))
    try:
        with running_otlp(ROLLGUARD_TOPIC_OTLP_LOGS=topic_logs,
                          ROLLGUARD_TOPIC_OTLP_SPANS=topic_spans,
                          ROLLGUARD_OTLP_PARTITIONS=str(PARTITIONS)) as receiver:
            assert await post(collector.endpoint, request_of("collector", trace_ids,
                                                             marker)) == 200
            assert await post(receiver.url, request_of("rollguard", trace_ids, marker)) == 200
            placed, messages = await read_placements(topic_logs, marker, 2 * TRACES + 2)
    finally:
        stop_started(collector)
        delete_topics([topic_logs, topic_spans])
    for trace in trace_ids:
        expected = trace_partition(bytes.fromhex(trace), PARTITIONS)
        assert placed["collector", trace] == placed["rollguard", trace] == expected
    spread = {placed["rollguard", t] for t in trace_ids}
    assert messages["rollguard"] <= len(spread) + 1 < messages["collector"]
