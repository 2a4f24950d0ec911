"""``otlp_proto``: a serialized ``ExportLogsServiceRequest`` or ``ExportTraceServiceRequest``
(what the Collector's kafka exporter writes by default) decoded to :mod:`.records`.

Only what rollguard reads is touched: a log record's ``event_name`` first, its attributes
only when it is an evaluation result; a span's attributes, and its events named
``gen_ai.evaluation.result``. Attributes are read from their bytes (:mod:`.attributes`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from rollguard.base.errors import InvalidEvent
from rollguard.streams.otlp.attributes import LogsRequest, TracesRequest, wanted
from rollguard.streams.otlp.records import (
    COHORT,
    EVALUATION_EVENT,
    MAX_ATTRIBUTES,
    RELEASE,
    SERVICE,
    SERVICE_NAME,
    Bad,
    Decoded,
    Evaluation,
    Resource,
    Span,
    bad_id,
    too_many,
)

_STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
_CHECKS: dict[str, Any] = {"logs": ExportLogsServiceRequest, "traces": ExportTraceServiceRequest}
_READS = {"logs": LogsRequest, "traces": TracesRequest}
_evaluation = partial(tuple.__new__, Evaluation)


def decode_proto(value: bytes, signal: str) -> list[Decoded]:
    """The records of one message of ``signal`` (``logs`` or ``traces``)."""
    try:
        _CHECKS[signal].FromString(value)  # the whole message checked: see .attributes
    except DecodeError as exc:
        what = _CHECKS[signal].__name__
        return [Bad(InvalidEvent("bad_otlp", f"not a serialized {what}: {exc}"),
                    {"signal": signal, "bytes": len(value), "head": value[:32].hex()})]
    request: Any = _READS[signal].FromString(value)
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


def _resource(pairs: Any, signal: str) -> Resource:
    if len(pairs) > MAX_ATTRIBUTES:
        return Resource(error=too_many("resource", len(pairs), signal).error)
    attrs = wanted(pairs)
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
    pairs = record.attributes
    if len(pairs) > MAX_ATTRIBUTES:
        return too_many("log_record", len(pairs), signal)
    if resource.error is not None:
        return Bad(resource.error, {"signal": signal, "kind": "resource"})
    trace_id, span_id = record.trace_id, record.span_id
    if (len(trace_id) == 16 or not trace_id) and (len(span_id) == 8 or not span_id):
        return _evaluation((wanted(pairs), resource, trace_id.hex(), span_id.hex(),
                            record.time_unix_nano, record.observed_time_unix_nano, None))
    ids = _ids(record, signal, "log_record", False)
    assert isinstance(ids, Bad)
    return ids


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
    decoded = Span(wanted(span.attributes), resource, ids[0], ids[1], span.start_time_unix_nano,
                   span.end_time_unix_nano, span.status.code == _STATUS_ERROR)
    out.append(decoded)
    for event in events:
        count = len(event.attributes)
        if count > MAX_ATTRIBUTES:
            out.append(too_many("span_event", count, signal))
            continue
        out.append(Evaluation(wanted(event.attributes), resource, ids[0], ids[1],
                              event.time_unix_nano, 0, decoded))
