"""The demo's service instrumented with the OpenTelemetry Python SDK (``rollguard demo --via
otel``): each output is one GenAI span (its release set right after the pointer's
``resolve``, its response id, latency, tokens and error status) and its evaluators' results
are ``gen_ai.evaluation.result`` events in the span's context, exported over OTLP/HTTP to
``rollguard otlp`` or an OpenTelemetry Collector — not rollguard's own events. The SDK is
not one of rollguard's requirements: ``pip install "rollguard[otel]"``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollguard.base.errors import ConfigError

try:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import Status, StatusCode
except ImportError as exc:  # pragma: no cover - the SDK is installed with the dev tools
    raise ConfigError("the demo's service via OpenTelemetry needs the OpenTelemetry SDK: "
                      'pip install "rollguard[otel]"') from exc

EVENT = "gen_ai.evaluation.result"
DELAY_MS = 100  # the demo's time runs fast: export every 0.1 s, not the SDK's 5 s
QUEUE = 200_000  # records waiting for export before the SDK drops any
BATCH = 512


def tracer_provider(service: str, endpoint: str) -> TracerProvider:
    """Spans of ``service`` exported in batches to ``endpoint`` (an OTLP/HTTP base URL)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(
        exporter, max_queue_size=QUEUE, schedule_delay_millis=DELAY_MS,
        max_export_batch_size=BATCH))
    return provider


def logger_provider(service: str, endpoint: str) -> LoggerProvider:
    """Log records (events) of ``service`` exported in batches to ``endpoint``."""
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")
    provider.add_log_record_processor(BatchLogRecordProcessor(
        exporter, schedule_delay_millis=DELAY_MS, max_export_batch_size=BATCH,
        max_queue_size=QUEUE))
    return provider


def evaluations(metrics: Mapping[str, float | bool]) -> list[dict[str, Any]]:
    """The evaluators' results of one output whose evaluation is ``metrics`` (the demo's
    scenario): names the default mapping knows (docs/opentelemetry.md); latency and errors
    are the span's own."""
    return [
        {"gen_ai.evaluation.name": "hallucination",
         "gen_ai.evaluation.score.label": "fail" if metrics["hallucination"] else "pass"},
        {"gen_ai.evaluation.name": "toxicity",
         "gen_ai.evaluation.score.value": metrics["toxicity"]},
        {"gen_ai.evaluation.name": "correctness",
         "gen_ai.evaluation.score.value": metrics["accuracy"]},
    ]


class OtelEmitter:
    """The demo's :class:`~rollguard.streams.emitter.Emitter` stand-in: ``emit`` makes an
    output's span and its evaluation events, dated at the simulated time ``ts``."""

    def __init__(self, service: str, endpoint: str) -> None:
        self.service, self.endpoint = service, endpoint
        self.tracing = tracer_provider(service, endpoint)
        self.logging = logger_provider(service, endpoint)
        self.tracer = self.tracing.get_tracer("rollguard.demo")
        self.logger = self.logging.get_logger("rollguard.demo.evaluators")
        self.outputs = 0

    async def start(self) -> None:
        """Nothing to connect: the exporters send from threads of their own."""

    def emit(self, service: str, release: str, metrics: Mapping[str, float | bool], *,
             ts: float) -> bool:
        end = int(ts * 1e9)
        self.outputs += 1
        span = self.tracer.start_span(
            "chat support-llm", start_time=end - int(metrics["latency_ms"] * 1e6),
            attributes={"gen_ai.operation.name": "chat", "rollguard.release": release,
                        "gen_ai.response.id": f"{service}-{self.outputs}",
                        "gen_ai.usage.input_tokens": 300,
                        "gen_ai.usage.output_tokens": int(metrics["cost_usd"] * 40_000)})
        if metrics["error"]:
            span.set_status(Status(StatusCode.ERROR))
        context = trace.set_span_in_context(span)
        for attributes in evaluations(metrics):
            self.logger.emit(event_name=EVENT, timestamp=end, context=context,
                             attributes=attributes)
        span.end(end_time=end)
        return True

    async def close(self) -> None:
        """Export what is still queued, then stop the exporters."""
        import asyncio

        await asyncio.to_thread(self.tracing.shutdown)
        await asyncio.to_thread(self.logging.shutdown)
