"""Attributes of ``otlp_proto`` records read straight from their bytes.

:mod:`.proto` parses each message twice with upb: once with OpenTelemetry's own classes,
only to check it (a message they cannot parse is ``bad_otlp``, bad UTF-8 anywhere
included), and once with the same schema in which every ``attributes`` field (of a
resource, log record, span and span event) is ``repeated bytes``: each attribute is then
one serialized ``KeyValue``, whose key is compared as bytes and whose value is decoded here
only when the key is wanted. Touching attributes as protobuf objects cost about 0.3 to 0.45 µs
each; this about a tenth of that.

A ``KeyValue`` written the usual way (key, then value, each once, lengths under 128 bytes)
is read here; any other layout is parsed by the ``KeyValue`` class, so the result is the
same as reading every attribute as an object.
"""

from __future__ import annotations

from collections.abc import Iterable
from struct import Struct
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from rollguard.streams.otlp.records import WANTED, unsupported

_AS_BYTES = frozenset({"opentelemetry.proto.resource.v1.Resource",
                       "opentelemetry.proto.logs.v1.LogRecord",
                       "opentelemetry.proto.trace.v1.Span",
                       "opentelemetry.proto.trace.v1.Span.Event"})
# key -> "\n" + its length + the key: how a KeyValue written the usual way begins
_HEADS = {bytes((10, len(key))) + key.encode(): key for key in WANTED}
_KINDS = {10: "string_value", 16: "bool_value", 24: "int_value", 33: "double_value",
          42: "array_value", 50: "kvlist_value", 58: "bytes_value"}
_KeyValue = common_pb2.KeyValue.FromString
_double = Struct("<d").unpack_from


def _schema() -> tuple[Any, Any]:
    """The export requests' classes with every ``attributes`` field as ``repeated bytes``."""
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2, logs_pb2, trace_pb2, logs_service_pb2,
                   trace_service_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        stack = [(f"{proto.package}.{message.name}", message) for message in proto.message_type]
        while stack:
            name, message = stack.pop()
            for field in message.field:
                if field.name == "attributes" and name in _AS_BYTES:
                    field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                    field.ClearField("type_name")
            stack += [(f"{name}.{nested.name}", nested) for nested in message.nested_type]
        pool.Add(proto)
    return tuple(message_factory.GetMessageClass(pool.FindMessageTypeByName(
        f"opentelemetry.proto.collector.{signal}.v1.Export{kind}ServiceRequest"))
        for signal, kind in (("logs", "Logs"), ("trace", "Trace")))


LogsRequest, TracesRequest = _schema()


def any_value(value: Any) -> Any:
    """An ``AnyValue`` object as rollguard keeps it (see :func:`.records.unsupported`)."""
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


def wanted(pairs: Iterable[bytes]) -> dict[str, Any]:
    """The wanted attributes among serialized ``KeyValue`` messages (the last of a key)."""
    found: dict[str, Any] = {}
    heads = _HEADS
    for pair in pairs:
        size = len(pair)
        if size < 2 or pair[0] != 10 or pair[1] > 127:
            _slow(pair, found)
            continue
        end = pair[1] + 2
        if size != end and (size < end + 2 or pair[end] != 18 or pair[end + 1] > 127
                            or size != end + 2 + pair[end + 1]):
            _slow(pair, found)  # not key then value, or a long value: as protobuf reads it
            continue
        key = heads.get(pair[:end])
        if key is None:
            continue
        tag = pair[end + 2] if size > end + 2 else None  # inline: a string, or a double
        if tag == 10 and size > end + 3 and pair[end + 3] == size - end - 4:
            found[key] = pair[end + 4:].decode()
        elif tag == 33 and size == end + 11:
            found[key] = _double(pair, end + 3)[0]
        else:
            found[key] = _value(pair, end + 2) if size != end else None
    return found


def _slow(pair: bytes, found: dict[str, Any]) -> None:
    parsed = _KeyValue(pair)
    if parsed.key in WANTED:
        found[parsed.key] = any_value(parsed.value)


def _value(pair: bytes, start: int) -> Any:
    # An AnyValue of one field written the usual way; else as protobuf reads it.
    size = len(pair) - start
    if size == 0:
        return None
    tag = pair[start]
    if tag == 10 and size >= 2 and pair[start + 1] == size - 2:
        return pair[start + 2:].decode()
    if tag == 33 and size == 9:
        return _double(pair, start + 1)[0]
    if tag == 16 and size == 2 and pair[start + 1] < 2:
        return pair[start + 1] == 1
    if tag == 24:
        number = _varint(pair, start + 1)
        if number is not None:
            return number
    kind = _KINDS.get(tag)
    if kind is not None and tag not in (10, 16, 24, 33) and _single(pair, start):
        return unsupported(kind)
    return any_value(_KeyValue(pair).value)


def _varint(pair: bytes, start: int) -> int | None:
    # A non-negative int64 that ends the bytes; None for anything else (negative: 10 bytes).
    number = shift = 0
    last = len(pair) - 1
    for at in range(start, min(last + 1, start + 9)):
        byte = pair[at]
        number |= (byte & 127) << shift
        shift += 7
        if byte < 128:
            return number if at == last else None
    return None


def _single(pair: bytes, start: int) -> bool:
    # One length-delimited field of under 128 bytes fills the AnyValue.
    return len(pair) - start >= 2 and pair[start + 1] == len(pair) - start - 2
