"""OTLP/HTTP request bodies in, Kafka messages out, as the Collector's kafka exporter
writes them: a body (``application/x-protobuf`` or OTLP's ``application/json``) is read into
an ``Export*ServiceRequest``; records that cannot be written (an id of the wrong length; one
record larger than a Kafka message) are taken out and counted for the answer's
``partial_success``; the rest is encoded ``otlp_proto`` or ``otlp_json`` and split, when it
exceeds a Kafka message, into several requests, each of whole resources, scopes or records.

OTLP's JSON is not protobuf's: trace and span ids are hex (protobuf's JSON has base64),
which is all :func:`decode` and :func:`encode` translate beyond ``json_format``.

>>> records = b'[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"},'
>>> records += b'{"spanId":"xyz"}]'
>>> body = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":' + records + b'}]}]}'
>>> read = decode(LOGS, body, "application/json")
>>> read.kept, read.rejected, read.request.resource_logs[0].scope_logs[0].log_records[0].span_id
(1, 1, b'\xee\xe1\x9b~\xc3\xc1\xb1t')
>>> encode(read.request, "otlp_json")[46:]
b'{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}]}'
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from rollguard.base.errors import InvalidEvent

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = (PROTOBUF, JSON)
ID_BYTES = {"traceId": 16, "spanId": 8, "parentSpanId": 8}  # OTLP JSON: 2 hex digits a byte
PROTO_IDS = {"traceId": "trace_id", "spanId": "span_id", "parentSpanId": "parent_span_id"}


@dataclass(frozen=True)
class Signal:
    """One OTLP signal: its path, messages and the names of its three levels."""

    name: str  # "logs" or "traces"
    path: str
    request: type[Message]
    response: type[Message]
    partial: type[Message]
    rejected_field: str
    levels: tuple[str, str, str]  # proto field names: resources, scopes, records
    json_levels: tuple[str, str, str]
    id_fields: tuple[str, ...]  # in a record (and a span's links)


LOGS = Signal("logs", "/v1/logs", logs_service_pb2.ExportLogsServiceRequest,
              logs_service_pb2.ExportLogsServiceResponse,
              logs_service_pb2.ExportLogsPartialSuccess, "rejected_log_records",
              ("resource_logs", "scope_logs", "log_records"),
              ("resourceLogs", "scopeLogs", "logRecords"), ("traceId", "spanId"))
TRACES = Signal("traces", "/v1/traces", trace_service_pb2.ExportTraceServiceRequest,
                trace_service_pb2.ExportTraceServiceResponse,
                trace_service_pb2.ExportTracePartialSuccess, "rejected_spans",
                ("resource_spans", "scope_spans", "spans"),
                ("resourceSpans", "scopeSpans", "spans"), ("traceId", "spanId", "parentSpanId"))


@dataclass(frozen=True)
class Read:
    """A decoded request, without the records it rejected (``why``: the first reason)."""

    request: Message
    kept: int
    rejected: int = 0
    why: str = ""


def decode(signal: Signal, body: bytes, content_type: str) -> Read:
    """The request of ``body``; InvalidEvent(``undecodable``) when it is not one."""
    request = signal.request()
    try:
        if content_type == PROTOBUF:
            request.ParseFromString(body)
            rejected = _drop_records(signal, request, _bad_proto_ids)
        else:
            document = orjson.loads(body)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            rejected = _drop_json_records(signal, document)
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (DecodeError, ValueError, TypeError, AttributeError, json_format.ParseError) as exc:
        raise InvalidEvent("undecodable", f"not an OTLP {signal.name} request "
                           f"({content_type}): {exc}") from exc
    why = "trace or span id of the wrong length" if rejected else ""
    return Read(request, count_records(signal, request), rejected, why)


def count_records(signal: Signal, request: Message) -> int:
    return sum(len(records) for _, _, records in _walk(signal, request))


def _walk(signal: Signal, request: Message) -> Iterator[tuple[Message, Message, Any]]:
    resources, scopes, records = signal.levels
    for resource in getattr(request, resources):
        for scope in getattr(resource, scopes):
            yield resource, scope, getattr(scope, records)


def _bad_proto_ids(record: Message) -> bool:
    ids = [(getattr(record, PROTO_IDS[name], b""), size) for name, size in ID_BYTES.items()]
    ids += [(link.trace_id, 16) for link in getattr(record, "links", ())]
    ids += [(link.span_id, 8) for link in getattr(record, "links", ())]
    return any(value and len(value) != size for value, size in ids)


def _drop_records(signal: Signal, request: Message, bad: Callable[[Message], bool]) -> int:
    dropped = 0
    for _, _, records in _walk(signal, request):
        kept = [record for record in records if not bad(record)]
        if len(kept) != len(records):
            dropped += len(records) - len(kept)
            del records[:]
            records.extend(kept)
    return dropped


def _drop_json_records(signal: Signal, document: dict[str, Any]) -> int:
    """Turn the hex ids of OTLP JSON into protobuf JSON's base64, in place; drop (and
    count) the records with an id that is not hex of its length."""
    resources, scopes, records = signal.json_levels
    dropped = 0
    for resource in document.get(resources) or ():
        for scope in resource.get(scopes) or ():
            found = scope.get(records) or []
            kept = [record for record in found if _hex_ids_to_base64(record)]
            dropped += len(found) - len(kept)
            if found:
                scope[records] = kept
    return dropped


def _hex_ids_to_base64(record: dict[str, Any]) -> bool:
    for item in (record, *(record.get("links") or ())):
        for name, size in ID_BYTES.items():
            value = item.get(name)
            if not value:
                continue
            try:
                raw = bytes.fromhex(value)
            except (TypeError, ValueError):
                return False
            if len(raw) != size:
                return False
            item[name] = base64.b64encode(raw).decode()
    return True


def encode(request: Message, encoding: str) -> bytes:
    """``request`` as the kafka exporter's ``otlp_proto`` or ``otlp_json`` writes it."""
    if encoding == "otlp_proto":
        return request.SerializeToString()
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for _, _, records in _walk_json(document):
        for record in records:
            for item in (record, *(record.get("links") or ())):
                for name in ID_BYTES:
                    if name in item:
                        item[name] = binascii.hexlify(base64.b64decode(item[name])).decode()
    return orjson.dumps(document)


def _walk_json(document: dict[str, Any]) -> Iterator[tuple[Any, Any, list[dict[str, Any]]]]:
    for resource in document.get("resourceLogs", document.get("resourceSpans", ())):
        for scope in resource.get("scopeLogs", resource.get("scopeSpans", ())):
            yield resource, scope, scope.get("logRecords", scope.get("spans", []))


def split(signal: Signal, request: Message, encoding: str,
          limit: int) -> tuple[list[bytes], int]:
    """``request`` encoded as Kafka messages of at most ``limit`` bytes (halved, by
    resources, then scopes, then records, until each part fits), and the count of records
    that alone exceed ``limit`` (left out)."""
    payload = encode(request, encoding)
    if len(payload) <= limit:
        return [payload], 0
    halves = _halves(signal, request)
    if halves is None:
        return [], count_records(signal, request)
    messages: list[bytes] = []
    too_large = 0
    for half in halves:
        part, left = split(signal, half, encoding, limit)
        messages += part
        too_large += left
    return messages, too_large


def _halves(signal: Signal, request: Message) -> tuple[Message, Message] | None:
    resources, scopes, records = signal.levels
    items = getattr(request, resources)
    if len(items) > 1:
        return _request(signal, items[: len(items) // 2]), _request(signal, items[len(items) // 2:])
    if not items:
        return None
    resource = items[0]
    scope_list = getattr(resource, scopes)
    if len(scope_list) > 1:
        level, children, name = resource, scope_list, scopes
    elif scope_list and len(getattr(scope_list[0], records)) > 1:
        level, children, name = scope_list[0], getattr(scope_list[0], records), records
    else:
        return None
    middle = len(children) // 2
    return (_narrowed(signal, resource, level, name, children[:middle]),
            _narrowed(signal, resource, level, name, children[middle:]))


def _request(signal: Signal, resources: Any) -> Message:
    request = signal.request()
    getattr(request, signal.levels[0]).extend(resources)
    return request


def _narrowed(signal: Signal, resource: Message, level: Message, name: str,
              children: Any) -> Message:
    """A request of ``resource`` with only ``children`` in the list ``name`` of ``level``
    (the resource's scopes, or the records of its one scope)."""
    request = signal.request()
    copy = getattr(request, signal.levels[0]).add()
    copy.CopyFrom(resource)
    target = copy if level is resource else getattr(copy, signal.levels[1])[0]
    del getattr(target, name)[:]
    getattr(target, name).extend(children)
    return request
