"""``otlp_proto``: a serialized ``ExportLogsServiceRequest`` or ``ExportTraceServiceRequest``
(what the Collector's kafka exporter writes by default) decoded to :mod:`.records`.

Only what rollguard reads is touched: a log record's ``event_name`` first, its attributes
only when it is an evaluation result; a span's attributes, and its events named
``gen_ai.evaluation.result``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from rollguard.base.errors import InvalidEvent
from rollguard.streams.otlp.records import (
    COHORT,
    EVALUATION_EVENT,
    MAX_ATTRIBUTES,
    RELEASE,
    SERVICE,
    SERVICE_NAME,
    WANTED,
    Bad,
    Decoded,
    Evaluation,
    Resource,
    Span,
    bad_id,
    too_many,
    unsupported,
)

_STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


def decode_proto(value: bytes, signal: str) -> list[Decoded]:
    """The records of one message of ``signal`` (``logs`` or ``traces``)."""
    request: Any = ExportLogsServiceRequest() if signal == "logs" else ExportTraceServiceRequest()
    try:
        request.ParseFromString(value)
    except DecodeError as exc:
        what = type(request).__name__
        return [Bad(InvalidEvent("bad_otlp", f"not a serialized {what}: {exc}"),
                    {"signal": signal, "bytes": len(value), "head": value[:32].hex()})]
    out: list[Decoded] = []
    if signal == "logs":
        for resource_logs in request.resource_logs:
            resource = _resource(resource_logs.resource.attributes, signal)
            for scope_logs in resource_logs.scope_logs:
                out += [_log(record, resource, signal) for record in scope_logs.log_records]
    else:
        for resource_spans in request.resource_spans:
            resource = _resource(resource_spans.resource.attributes, signal)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    _span(span, resource, signal, out)
    return out


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "double_value":
        return value.double_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    return None if kind is None else unsupported(kind)


def _attrs(pairs: Iterable[Any]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if pair.key in WANTED}


def _resource(pairs: Any, signal: str) -> Resource:
    if len(pairs) > MAX_ATTRIBUTES:
        return Resource(error=too_many("resource", len(pairs), signal).error)
    attrs = _attrs(pairs)
    service = attrs.get(SERVICE)
    return Resource(attrs.get(SERVICE_NAME) if service is None else service,
                    attrs.get(RELEASE), attrs.get(COHORT))


def _ids(item: Any, signal: str, kind: str, required: bool) -> tuple[str, str] | Bad:
    trace_id, span_id = item.trace_id, item.span_id
    if len(trace_id) != 16 and (required or trace_id):
        return bad_id("trace_id", trace_id, signal, kind)
    if len(span_id) != 8 and (required or span_id):
        return bad_id("span_id", span_id, signal, kind)
    return trace_id.hex(), span_id.hex()


def _log(record: Any, resource: Resource, signal: str) -> Decoded:
    if record.event_name != EVALUATION_EVENT:
        return "not_evaluation"
    count = len(record.attributes)
    if count > MAX_ATTRIBUTES:
        return too_many("log_record", count, signal)
    if resource.error is not None:
        return Bad(resource.error, {"signal": signal, "kind": "resource"})
    ids = _ids(record, signal, "log_record", False)
    if isinstance(ids, Bad):
        return ids
    return Evaluation(_attrs(record.attributes), resource, ids[0], ids[1],
                      record.time_unix_nano, record.observed_time_unix_nano)


def _span(span: Any, resource: Resource, signal: str, out: list[Decoded]) -> None:
    events = [event for event in span.events if event.name == EVALUATION_EVENT]
    count = len(span.attributes)
    failure: Bad | None = None
    if count > MAX_ATTRIBUTES:
        failure = too_many("span", count, signal)
    elif resource.error is not None:
        failure = Bad(resource.error, {"signal": signal, "kind": "resource"})
    ids = _ids(span, signal, "span", True)
    if failure is None and isinstance(ids, Bad):
        failure = ids
    if failure is not None:
        out += [failure] * (1 + len(events))  # the span and each of its evaluations
        return
    assert not isinstance(ids, Bad)
    attrs = _attrs(span.attributes)
    decoded = Span(attrs, resource, ids[0], ids[1], span.start_time_unix_nano,
                   span.end_time_unix_nano, span.status.code == _STATUS_ERROR)
    out.append(decoded)
    for event in events:
        count = len(event.attributes)
        if count > MAX_ATTRIBUTES:
            out.append(too_many("span_event", count, signal))
            continue
        out.append(Evaluation(_attrs(event.attributes), resource, ids[0], ids[1],
                              event.time_unix_nano, 0, decoded))
