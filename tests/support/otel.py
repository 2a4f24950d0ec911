"""OpenTelemetry in tests: evaluation results and GenAI spans made by the real Python SDK
(kept in memory, then sent by its real OTLP/HTTP exporters to a Collector or to
``rollguard otlp``), ``rollguard otlp`` run as a command, and a Kafka topic read from its
end (:class:`Tail`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rollguard.streams.connect import (
    consumer,
    ensure_topics,
    new_admin_client,
    partition_counts,
)
from tests.support.ports import free_port

EVENT = "gen_ai.evaluation.result"


@dataclass
class Evaluation:
    """One GenAI output's span and one evaluation result emitted inside it, by the SDK."""

    marker: str  # gen_ai.response.id of the output, unique to the test
    logs: Sequence[Any]
    spans: Sequence[Any]

    @property
    def trace_id(self) -> str:
        return f"{self.spans[0].context.trace_id:032x}"

    @property
    def span_id(self) -> str:
        return f"{self.spans[0].context.span_id:016x}"


def evaluation(records: int = 1, service: str = "support-bot") -> Evaluation:
    """``records`` evaluation results of one output, made by the SDK and kept in memory."""
    marker = uuid.uuid4().hex
    resource = Resource.create({"service.name": service, "rollguard.release": "v2"})
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    tracing = TracerProvider(resource=resource)
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    logging = LoggerProvider(resource=resource)
    logging.add_log_record_processor(SimpleLogRecordProcessor(logs))
    logger = logging.get_logger("rollguard.tests.eval")
    with tracing.get_tracer("rollguard.tests").start_as_current_span(
            "chat m-2.4", attributes={"gen_ai.operation.name": "chat",
                                      "gen_ai.response.id": marker}):
        for number in range(records):
            logger.emit(event_name=EVENT, timestamp=time.time_ns(), attributes={
                "gen_ai.evaluation.name": "hallucination",
                "gen_ai.evaluation.score.label": "pass",
                "gen_ai.evaluation.score.value": float(number % 2),
                "gen_ai.response.id": marker})
    tracing.shutdown()
    logging.shutdown()
    return Evaluation(marker, logs.get_finished_logs(), spans.get_finished_spans())


def export(base_url: str, sent: Evaluation, **options: Any) -> tuple[bool, bool]:
    """Send ``sent``'s records and span with the SDK's OTLP/HTTP exporters (``options``:
    headers, timeout, certificate_file, compression, session); whether each succeeded."""
    logs = OTLPLogExporter(endpoint=f"{base_url}/v1/logs", **options)
    spans = OTLPSpanExporter(endpoint=f"{base_url}/v1/traces", **options)
    try:
        return (logs.export(sent.logs).name == "SUCCESS",
                spans.export(sent.spans).name == "SUCCESS")
    finally:
        logs.shutdown()
        spans.shutdown()


class Tail:
    """A topic read from where it ended when the tail began (no consumer group)."""

    def __init__(self, client: AIOKafkaConsumer) -> None:
        self.client = client
        self.unread: deque[bytes] = deque()  # fetched, not yet looked at by until()

    async def until(self, found: Callable[[bytes], bool], timeout: float = 60.0) -> bytes:
        """The next message that ``found`` accepts (those before it are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                while self.unread:
                    value = self.unread.popleft()
                    if found(value):
                        return value
                batches = await self.client.getmany(timeout_ms=500)
                self.unread.extend(m.value for ms in batches.values() for m in ms
                                   if m.value is not None)


@asynccontextmanager
async def tail(topic: str, bootstrap: str | None = None) -> AsyncIterator[Tail]:
    await ensure_topics({topic: 1}, bootstrap)
    async with consumer(bootstrap=bootstrap, enable_auto_commit=False) as client:
        count = (await partition_counts([topic], bootstrap))[topic]
        partitions = [TopicPartition(topic, p) for p in range(count)]
        client.assign(partitions)
        await client.seek_to_end(*partitions)
        for partition in partitions:
            await client.position(partition)  # fixed now, before anything is sent
        yield Tail(client)


@dataclass
class Receiver:
    """A ``rollguard otlp`` process and what it printed."""

    process: subprocess.Popen[str]
    url: str
    topic_logs: str
    topic_spans: str
    lines: list[str] = field(default_factory=list)

    def printed(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.printed():
                return True
            if self.process.poll() is not None and text not in self.printed():
                time.sleep(0.2)  # the reader thread's last lines
                return text in self.printed()
            time.sleep(0.05)
        return False


def otlp_command(env: dict[str, str], *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "rollguard.cli", "otlp", *options],
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@contextmanager
def running_otlp(*options: str, **env: str) -> Iterator[Receiver]:
    """``rollguard otlp OPTIONS`` on a free port with topics of its own (``env`` added:
    settings), once it says it receives; stopped with SIGTERM at the end."""
    suffix = uuid.uuid4().hex[:10]
    scheme = "https" if env.get("ROLLGUARD_OTLP_TLS_CERTFILE") else "http"
    port = free_port()
    settings = {"ROLLGUARD_OTLP_ADDR": f"127.0.0.1:{port}", "ROLLGUARD_OTLP_PARTITIONS": "1",
                "ROLLGUARD_TOPIC_OTLP_LOGS": f"test-otlp-logs-{suffix}",
                "ROLLGUARD_TOPIC_OTLP_SPANS": f"test-otlp-spans-{suffix}", **env}
    receiver = Receiver(otlp_command(settings, *options), f"{scheme}://127.0.0.1:{port}",
                        settings["ROLLGUARD_TOPIC_OTLP_LOGS"],
                        settings["ROLLGUARD_TOPIC_OTLP_SPANS"])
    threading.Thread(target=_collect, args=(receiver,), daemon=True).start()
    try:
        assert receiver.wait_for("otlp: receiving"), receiver.printed()
        yield receiver
    finally:
        if receiver.process.poll() is None:
            receiver.process.terminate()
            receiver.process.wait(30)
        delete_topics([receiver.topic_logs, receiver.topic_spans], env.get("KAFKA_BOOTSTRAP"))


def delete_topics(topics: list[str], bootstrap: str | None = None) -> None:
    """Delete ``topics`` where they exist (from any thread, a test's event loop running or
    not): a broker that keeps every test's partitions gets slower for the later ones."""
    async def delete() -> None:
        admin = new_admin_client(bootstrap)
        await admin.start()
        try:
            mine = [t for t in await admin.list_topics() if t in topics]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()

    worker = threading.Thread(target=asyncio.run, args=(delete(),))
    worker.start()
    worker.join(60)


def _collect(receiver: Receiver) -> None:
    assert receiver.process.stdout is not None
    for line in receiver.process.stdout:
        receiver.lines.append(line)
