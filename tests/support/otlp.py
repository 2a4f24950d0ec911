"""OTLP requests for tests: built with opentelemetry-proto, encoded as the Collector's kafka
exporter writes them (``otlp_proto``) or as OTLP JSON (``otlp_json``: hex ids, 64-bit
integers as strings, enums as integers)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from rollguard.detectors.blocks import Block, block_as_events
from rollguard.detectors.events import Event
from rollguard.streams.otlp.translate import Result

EVAL = "gen_ai.evaluation.result"
T0 = 1_765_074_000_000_000_000  # ns
ENCODINGS = ("otlp_proto", "otlp_json")
TRACE, SPAN, SPAN2 = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "0123456789abcdef"
EVALUATOR = {"service.name": "judge"}  # a separate evaluator process: names neither


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    return AnyValue(string_value=value)


def attributes(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]


def evaluation(name: str | None = "hallucination", *, score: float | None = None,
               label: str | None = None, trace: str = "", span: str = "", t: int = T0,
               observed: int = 0, event_name: str = EVAL, **attrs: Any) -> LogRecord:
    """A log record of an evaluation result; ``attrs`` with ``__`` for ``.``."""
    extra = {k.replace("__", "."): v for k, v in attrs.items()}
    own: dict[str, Any] = {}
    if name is not None:
        own["gen_ai.evaluation.name"] = name
    if score is not None:
        own["gen_ai.evaluation.score.value"] = score
    if label is not None:
        own["gen_ai.evaluation.score.label"] = label
    return LogRecord(time_unix_nano=t, observed_time_unix_nano=observed, event_name=event_name,
                     trace_id=bytes.fromhex(trace), span_id=bytes.fromhex(span),
                     attributes=attributes({**own, **extra}))


def logs(*resources: tuple[dict[str, Any], list[LogRecord]]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    for resource, records in resources:
        part = request.resource_logs.add()
        part.resource.attributes.extend(attributes(resource))
        part.scope_logs.add().log_records.extend(records)
    return request


def genai_span(trace: str, span: str, *, start: int = T0, ms: float = 800.0,
               failed: bool = False, events: tuple[tuple[str, dict[str, Any]], ...] = (),
               operation: str | None = "chat", **attrs: Any) -> Span:
    """A span; ``attrs`` with ``__`` for ``.``; ``operation`` None: not a GenAI span."""
    given = {k.replace("__", "."): v for k, v in attrs.items()}
    if operation is not None:
        given["gen_ai.operation.name"] = operation
    out = Span(trace_id=bytes.fromhex(trace), span_id=bytes.fromhex(span), name="chat",
               start_time_unix_nano=start, end_time_unix_nano=start + int(ms * 1e6),
               attributes=attributes(given))
    if failed:
        out.status.code = 2  # type: ignore[assignment]
    for name, event_attrs in events:
        out.events.add(name=name, time_unix_nano=start + int(ms * 1e6) + 1000,
                       attributes=attributes(event_attrs))
    return out


def traces(*resources: tuple[dict[str, Any], list[Span]]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for resource, spans in resources:
        part = request.resource_spans.add()
        part.resource.attributes.extend(attributes(resource))
        part.scope_spans.add().spans.extend(spans)
    return request


def _hex_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId")
                    else _hex_ids(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def protobuf_json(request: Any) -> dict[str, Any]:
    """protobuf's generic JSON mapping (base64 ids): not OTLP JSON."""
    return json_format.MessageToDict(request, use_integers_for_enums=True)


def otlp_json(request: Any) -> bytes:
    return orjson.dumps(_hex_ids(protobuf_json(request)))


def encode(request: Any, encoding: str) -> bytes:
    return request.SerializeToString() if encoding == "otlp_proto" else otlp_json(request)


def events(result: Result) -> list[Event]:
    """Every valid event of a result, one by one; fails on a rejected one."""
    out: list[Event] = []
    for items in result.items.values():
        for item, _raw, error in items:
            assert error is None and item is not None
            out += block_as_events(item) if isinstance(item, Block) else [item]
    return out


def reasons(result: Result) -> list[str]:
    """The reason codes of a result's dead letters of no service, in order."""
    return [error.reason for _item, _raw, error in result.rejected if error is not None]
