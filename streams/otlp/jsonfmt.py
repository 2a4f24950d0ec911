"""``otlp_json``: the OTLP JSON encoding of an export request, decoded to :mod:`.records`.

OTLP JSON is not protobuf's generic JSON mapping: keys are lowerCamelCase, trace and span
ids are hex (a base64 id is a bad record: ``bad_trace_id``/``bad_span_id``), 64-bit
integers may be strings, enums are integers, and ``eventName`` is a field of the log record.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

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

_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}").fullmatch
_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}").fullmatch
_STATUS_ERROR = (2, "STATUS_CODE_ERROR")  # an integer in OTLP JSON; the name, leniently
_KINDS = {"stringValue": None, "boolValue": None, "intValue": int, "doubleValue": float}
_TOP = {"logs": ("resourceLogs", "scopeLogs", "logRecords"),
        "traces": ("resourceSpans", "scopeSpans", "spans")}


def decode_json(value: bytes, signal: str) -> list[Decoded]:
    """The records of one message of ``signal`` (``logs`` or ``traces``)."""
    try:
        request = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return [Bad(InvalidEvent("not_json", str(exc)), value[:200].decode("utf-8", "replace"))]
    top, middle, leaf = _TOP[signal]
    out: list[Decoded] = []
    try:
        for resource_part in _list(request, top, required=True):
            resource = _resource(resource_part, signal)
            for scope_part in _list(resource_part, middle):
                records = _list(scope_part, leaf)
                if signal == "logs":
                    out += [_log(record, resource, signal) for record in records]
                else:
                    for span in records:
                        _span(span, resource, signal, out)
    except InvalidEvent as exc:  # the shape of the request itself: nothing in it is read
        return [Bad(exc, {"signal": signal, "bytes": len(value)})]
    return out


def _list(parent: Any, key: str, required: bool = False) -> list[Any]:
    if type(parent) is not dict:
        raise InvalidEvent("bad_otlp", f"expected an object holding {key}")
    found = parent.get(key)
    if found is None and not required:
        return []
    if type(found) is not list:
        raise InvalidEvent("bad_otlp", f"{key} must be an array")
    return found


def _value(value: Any) -> Any:
    if type(value) is not dict or not value:
        return None
    kind, found = next(iter(value.items()))
    if kind not in _KINDS:
        return unsupported(kind)
    convert = _KINDS[kind]
    if convert is not None and type(found) is str:
        try:  # 64-bit integers as strings; "NaN" and "Infinity" as doubles
            return convert(found)
        except ValueError:
            return found
    return found


def _attrs(pairs: Any) -> dict[str, Any]:
    if type(pairs) is not list:
        raise InvalidEvent("bad_otlp", "attributes must be an array")
    found: dict[str, Any] = {}
    for pair in pairs:
        if type(pair) is not dict:
            raise InvalidEvent("bad_otlp", "an attribute must be an object")
        key = pair.get("key")
        if key in WANTED:
            found[key] = _value(pair.get("value"))
    return found


def _count(item: dict[str, Any]) -> int:
    pairs = item.get("attributes")
    return len(pairs) if type(pairs) is list else 0


def _resource(part: dict[str, Any], signal: str) -> Resource:
    resource = part.get("resource") or {}
    if type(resource) is not dict:
        raise InvalidEvent("bad_otlp", "resource must be an object")
    if _count(resource) > MAX_ATTRIBUTES:
        return Resource(error=too_many("resource", _count(resource), signal).error)
    attrs = _attrs(resource.get("attributes", []))
    service = attrs.get(SERVICE)
    return Resource(attrs.get(SERVICE_NAME) if service is None else service,
                    attrs.get(RELEASE), attrs.get(COHORT))


def _ids(item: dict[str, Any], signal: str, kind: str, required: bool) -> tuple[str, str] | Bad:
    trace_id, span_id = item.get("traceId", ""), item.get("spanId", "")
    if (required or trace_id) and (type(trace_id) is not str or not _TRACE_ID(trace_id)):
        return bad_id("trace_id", trace_id, signal, kind)
    if (required or span_id) and (type(span_id) is not str or not _SPAN_ID(span_id)):
        return bad_id("span_id", span_id, signal, kind)
    return trace_id.lower(), span_id.lower()


def _nanos(item: dict[str, Any], key: str) -> int:
    found = item.get(key, 0)
    if type(found) is int and found >= 0:
        return found
    if type(found) is str and found.isdigit():
        return int(found)
    raise InvalidEvent("bad_ts", f"{key} must be unix nanoseconds, got {str(found)[:40]!r}")


def _log(record: Any, resource: Resource, signal: str) -> Decoded:
    if type(record) is not dict:
        return Bad(InvalidEvent("not_object", "a log record must be an object"), record)
    if record.get("eventName") != EVALUATION_EVENT:
        return "not_evaluation"
    if _count(record) > MAX_ATTRIBUTES:
        return too_many("log_record", _count(record), signal)
    if resource.error is not None:
        return Bad(resource.error, {"signal": signal, "kind": "resource"})
    ids = _ids(record, signal, "log_record", False)
    if isinstance(ids, Bad):
        return ids
    try:
        return Evaluation(_attrs(record.get("attributes", [])), resource, ids[0], ids[1],
                          _nanos(record, "timeUnixNano"), _nanos(record, "observedTimeUnixNano"))
    except InvalidEvent as exc:
        return Bad(exc, {"signal": signal, "kind": "log_record", "trace_id": ids[0],
                         "span_id": ids[1]})


def _span(span: Any, resource: Resource, signal: str, out: list[Decoded]) -> None:
    events = span.get("events") if type(span) is dict else None
    events = [e for e in events if type(e) is dict and e.get("name") == EVALUATION_EVENT] \
        if type(events) is list else []
    try:
        decoded = _read_span(span, resource, signal)
    except InvalidEvent as exc:
        decoded = Bad(exc, {"signal": signal, "kind": "span"})
    if isinstance(decoded, Bad):
        out += [decoded] * (1 + len(events))  # the span and each of its evaluations
        return
    out.append(decoded)
    for event in events:
        if _count(event) > MAX_ATTRIBUTES:
            out.append(too_many("span_event", _count(event), signal))
            continue
        try:
            out.append(Evaluation(_attrs(event.get("attributes", [])), resource,
                                  decoded.trace_id, decoded.span_id,
                                  _nanos(event, "timeUnixNano"), 0, decoded))
        except InvalidEvent as exc:
            out.append(Bad(exc, {"signal": signal, "kind": "span_event"}))


def _read_span(span: Any, resource: Resource, signal: str) -> Span | Bad:
    if type(span) is not dict:
        raise InvalidEvent("not_object", "a span must be an object")
    if _count(span) > MAX_ATTRIBUTES:
        return too_many("span", _count(span), signal)
    if resource.error is not None:
        return Bad(resource.error, {"signal": signal, "kind": "resource"})
    ids = _ids(span, signal, "span", True)
    if isinstance(ids, Bad):
        return ids
    status = span.get("status") or {}
    failed = type(status) is dict and status.get("code") in _STATUS_ERROR
    return Span(_attrs(span.get("attributes", [])), resource, ids[0], ids[1],
                _nanos(span, "startTimeUnixNano"), _nanos(span, "endTimeUnixNano"), failed)
