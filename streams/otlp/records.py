"""What the two OTLP encodings decode to: the records rollguard reads, and their limits.

Both decoders (:mod:`.proto` for ``otlp_proto``, :mod:`.jsonfmt` for ``otlp_json``) keep of
each record only the attributes in :data:`WANTED`, ids as lowercase hex and times as
integer nanoseconds, so the two encodings of one batch decode to equal records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from rollguard.base.errors import InvalidEvent

EVALUATION_EVENT = "gen_ai.evaluation.result"
EVALUATION_NAME = "gen_ai.evaluation.name"
SCORE_VALUE = "gen_ai.evaluation.score.value"
SCORE_LABEL = "gen_ai.evaluation.score.label"
RESPONSE_ID = "gen_ai.response.id"
ERROR_TYPE = "error.type"
OPERATION = "gen_ai.operation.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
SERVICE = "rollguard.service"
RELEASE = "rollguard.release"
COHORT = "rollguard.cohort"
SERVICE_NAME = "service.name"

WANTED = frozenset({EVALUATION_NAME, SCORE_VALUE, SCORE_LABEL, RESPONSE_ID, ERROR_TYPE,
                    OPERATION, REQUEST_MODEL, RESPONSE_MODEL, INPUT_TOKENS, OUTPUT_TOKENS,
                    SERVICE, RELEASE, COHORT, SERVICE_NAME})
# The OpenTelemetry SDKs' default attribute count limit: a record, span, span event or
# resource with more attributes than this is a dead letter, its attributes never read.
MAX_ATTRIBUTES = 128
MAX_ID_CHARS = 256  # a longer gen_ai.response.id is not used to join
SHOWN_ATTRIBUTES = 32  # attributes a dead letter shows

REASONS = ("bad_otlp", "bad_trace_id", "bad_span_id", "too_many_attributes", "bad_ts",
           "missing_evaluation_name", "missing_score", "bad_score", "score_out_of_range",
           "unknown_label", "release_unknown")
"""Reason codes of the dead letters this package adds to those of the wire format."""
SKIPPED = ("not_evaluation", "not_genai", "operation_ignored", "evaluation_error",
           "unknown_evaluation", "spans_off")
"""Why a record is counted but neither judged nor a dead letter."""


def unsupported(kind: str) -> dict[str, str]:
    """The value kept for an attribute of a kind rollguard never reads (array, map, bytes):
    no string and no number, so any check of it fails, and JSON in a dead letter."""
    return {"unsupported": kind}


@dataclass(slots=True)
class Resource:
    """A resource's ``rollguard.service`` (else ``service.name``), ``rollguard.release`` and
    ``rollguard.cohort``; ``error`` when its records cannot be read (too many attributes)."""

    service: Any = None
    release: Any = None
    cohort: Any = None
    error: InvalidEvent | None = None


class Span(NamedTuple):
    """A span: its wanted attributes, ids, start and end, and whether its status is ERROR.
    (A tuple, made with ``tuple.__new__(Span, (...))`` where many are: a tenth of the cost
    of a dataclass.)"""

    attrs: dict[str, Any]
    resource: Resource
    trace_id: str
    span_id: str
    start_ns: int
    end_ns: int
    failed: bool


class Evaluation(NamedTuple):
    """A ``gen_ai.evaluation.result``: a log record (``span`` None) or a span's event."""

    attrs: dict[str, Any]
    resource: Resource
    trace_id: str
    span_id: str
    time_ns: int
    observed_ns: int
    span: Span | None = None


@dataclass(slots=True)
class Bad:
    """A record (or a whole message) that cannot be read: the error and what to show."""

    error: InvalidEvent
    raw: Any


Decoded = Span | Evaluation | Bad | str
"""One record decoded: a span, an evaluation, a dead letter, or a :data:`SKIPPED` reason."""


def summary(record: Span | Evaluation, signal: str) -> dict[str, Any]:
    """What a dead letter shows of a record: never more than a few dozen values."""
    out: dict[str, Any] = {"signal": signal, "service": record.resource.service}
    if isinstance(record, Evaluation):
        out["kind"] = "log_record" if record.span is None else "span_event"
        out["time_unix_nano"] = record.time_ns
        out["observed_time_unix_nano"] = record.observed_ns
    else:
        out.update(kind="span", start_time_unix_nano=record.start_ns,
                   end_time_unix_nano=record.end_ns)
    out["trace_id"], out["span_id"] = record.trace_id, record.span_id
    out["attributes"] = dict(list(record.attrs.items())[:SHOWN_ATTRIBUTES])
    return out


def too_many(what: str, count: int, signal: str) -> Bad:
    """The dead letter of a record with more than :data:`MAX_ATTRIBUTES` attributes."""
    return Bad(InvalidEvent("too_many_attributes",
                            f"{what} has {count} attributes, more than {MAX_ATTRIBUTES}"),
               {"signal": signal, "kind": what, "attributes_count": count})


def bad_id(field: str, value: Any, signal: str, where: str) -> Bad:
    """The dead letter of a record whose trace or span id is not hex of the right length."""
    reason = "bad_trace_id" if field == "trace_id" else "bad_span_id"
    size = 32 if field == "trace_id" else 16
    shown = value[:64] if isinstance(value, str | bytes) else value
    return Bad(InvalidEvent(reason, f"{field} must be {size} hex digits (OTLP JSON) or "
                            f"{size // 2} bytes, got {shown!r}"),
               {"signal": signal, "kind": where, field: repr(shown)})
