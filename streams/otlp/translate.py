"""OTLP messages in, rollguard's events out: per service, as ``streams.wire.read_message``
yields them, plus the dead letters and the records counted but not judged.

One message of the Collector's kafka exporter mixes services; :meth:`OtlpReader.read`
returns each service's events as blocks (validated exactly as the wire format's), so the
worker feeds them to that service's monitor. Each record has one outcome: an event, a dead
letter (:data:`~rollguard.streams.otlp.records.REASONS`), a count in ``skipped``
(:data:`~rollguard.streams.otlp.records.SKIPPED`; unknown evaluation names also in
``unknown``), or held for its evaluated output (:mod:`.join`), which a later call resolves
or dead-letters as ``release_unknown``.

Where a record's service and release come from (the first that has a release):

1. the record's own ``rollguard.release`` (and ``rollguard.service``, else as below);
2. its span: for a span event, the span's attributes; for any record, the output it
   evaluated, joined by span id or ``gen_ai.response.id`` (:mod:`.join`);
3. its resource's ``rollguard.release`` and ``rollguard.service`` (else ``service.name``).

A record naming ``rollguard.service`` is that service's whichever level gave the release.
Its time is the evaluated output's (the span's end) where known, else its own, else when
it was observed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from hashlib import blake2b
from typing import Any, NamedTuple

from rollguard.base.errors import ConfigError, InvalidEvent
from rollguard.detectors.evaluations import Evaluator, OtelMapping, normalize
from rollguard.detectors.monitors import Item
from rollguard.detectors.names import is_service_name
from rollguard.streams.otlp.columns import Columns
from rollguard.streams.otlp.join import Join, Output
from rollguard.streams.otlp.jsonfmt import decode_json
from rollguard.streams.otlp.proto import decode_proto
from rollguard.streams.otlp.records import (
    COHORT,
    ERROR_TYPE,
    EVALUATION_NAME,
    INPUT_TOKENS,
    MAX_ID_CHARS,
    OPERATION,
    OUTPUT_TOKENS,
    RELEASE,
    REQUEST_MODEL,
    RESPONSE_ID,
    RESPONSE_MODEL,
    SCORE_LABEL,
    SCORE_VALUE,
    SERVICE,
    Bad,
    Evaluation,
    Resource,
    Span,
    summary,
)
from rollguard.streams.wire import read_decoded

ENCODINGS = ("otlp_proto", "otlp_json")
MAX_NAMES = 10_000  # evaluation names whose lookup is remembered
SIGNALS = ("logs", "traces")


@dataclass
class Result:
    """What some records became: ``items`` per service (valid events and blocks, and the
    events a block check rejected), ``rejected`` dead letters of no service, ``skipped``
    counts by reason, ``unknown`` evaluation names by count, ``held`` records waiting for
    their output, and ``records`` read."""

    items: dict[str, list[Item]] = field(default_factory=dict)
    rejected: list[Item] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)
    held: int = 0
    records: int = 0


class _Scored(NamedTuple):
    # An evaluation with its metric value, waiting (maybe) for its output.
    record: Evaluation
    signal: str
    metric: str
    value: float
    event_id: str


_scored = partial(tuple.__new__, _Scored)


def _hex_id(text: str) -> str:
    return blake2b(text.encode(), digest_size=8).hexdigest()


def _text(value: Any) -> str | None:
    return value if type(value) is str and value else None


class OtlpReader:
    """Reads OTLP messages with a policy's ``opentelemetry`` mapping and one evaluator
    :class:`~.join.Join` (one per worker partition: the outputs and evaluations it holds)."""

    def __init__(self, mapping: OtelMapping, join: Join[Any] | None = None) -> None:
        self.mapping = mapping
        self.join: Join[_Scored] = join if join is not None else Join()
        self._spans = mapping.spans
        self._names: dict[str, tuple[str, Evaluator | None]] = {}

    def _name(self, name: str) -> tuple[str, Evaluator | None]:
        # An evaluation name as compared, and its evaluator: remembered for the next record.
        if len(self._names) >= MAX_NAMES:
            self._names.clear()
        found = self._names[name] = (normalize(name), self.mapping.evaluator(name))
        return found

    def read(self, value: bytes | None, encoding: str, signal: str, now: float) -> Result:
        """One Kafka message: ``encoding`` ``otlp_proto`` or ``otlp_json``, ``signal``
        ``logs`` or ``traces``; ``now`` is the clock of the join's window."""
        if encoding not in ENCODINGS or signal not in SIGNALS:
            raise ConfigError(f"OTLP encoding must be one of {', '.join(ENCODINGS)} and signal "
                              f"one of {', '.join(SIGNALS)}, got {encoding!r}, {signal!r}")
        out = Result()
        columns = Columns()
        self._let_go(self.join.expire(now), out)
        if not value:
            out.rejected.append((None, value, InvalidEvent("empty_message")))
            return out
        decode = decode_proto if encoding == "otlp_proto" else decode_json
        records = decode(value, signal)
        out.records = len(records)
        for record in records:
            kind = type(record)
            if kind is Evaluation:
                self._evaluation(record, signal, now, out, columns)  # type: ignore[arg-type]
            elif kind is str:
                out.skipped[record] += 1  # type: ignore[index]
            elif kind is Span:
                self._span(record, signal, now, out, columns)  # type: ignore[arg-type]
            else:
                assert isinstance(record, Bad)
                out.rejected.append((None, record.raw, record.error))
        for service, block in columns.blocks():
            out.items.setdefault(service, []).extend(read_decoded(block))
        return out

    def expire(self, now: float) -> Result:
        """The held evaluations whose window passed, as ``release_unknown`` dead letters."""
        out = Result()
        self._let_go(self.join.expire(now), out)
        return out

    def let_go_oldest(self) -> Result:
        """The oldest held evaluation let go now (to bound what waits for it), as a
        ``release_unknown`` dead letter; nothing when none is held."""
        out = Result()
        self._let_go(self.join.let_go_oldest(), out)
        return out

    def _let_go(self, scored: list[_Scored], out: Result) -> None:
        for one in scored:
            detail = (f"no release on the record or its resource, and its output (span "
                      f"{one.record.span_id or '-'}, response {self._response(one.record) or '-'})"
                      f" was not seen within {self.join.window_s:g} s")
            out.rejected.append((None, summary(one.record, one.signal),
                                 InvalidEvent("release_unknown", detail)))

    @staticmethod
    def _response(record: Evaluation | Span) -> str | None:
        found = _text(record.attrs.get(RESPONSE_ID))
        if found is None and isinstance(record, Evaluation) and record.span is not None:
            found = _text(record.span.attrs.get(RESPONSE_ID))
        return found if found is not None and len(found) <= MAX_ID_CHARS else None

    def _keys(self, record: Evaluation | Span, response: str | None) -> tuple[str, ...]:
        if record.span_id:
            return (record.span_id, "r:" + response) if response else (record.span_id,)
        return ("r:" + response,) if response else ()

    def _span(self, span: Span, signal: str, now: float, out: Result,
              columns: Columns) -> None:
        attrs = span.attrs
        operation = attrs.get(OPERATION)
        if operation is None:
            out.skipped["not_genai"] += 1
            return
        resource = span.resource
        release = attrs.get(RELEASE, resource.release)
        service = attrs.get(SERVICE, resource.service)
        cohort = attrs.get(COHORT, resource.cohort)
        ts = (span.end_ns or span.start_ns) / 1e9
        checked = _checked(service, release, ts)
        if checked is None and type(service) is str and type(release) is str:
            output = Output(service, release, cohort, ts)
            keys = self._keys(span, self._response(span))
            self._resolved(self.join.remember(keys, output, now), output, out, columns)
        if not self._spans.enabled:
            out.skipped["spans_off"] += 1
        elif self._spans.operations and operation not in self._spans.operations:
            out.skipped["operation_ignored"] += 1
        elif checked is not None:
            out.rejected.append((None, summary(span, signal), checked))
        else:
            columns.add(service, release, cohort, _hex_id(f"span|{span.trace_id}|{span.span_id}"),
                        ts, self._span_metrics(span))

    def _span_metrics(self, span: Span) -> dict[str, float]:
        attrs = span.attrs
        metrics: dict[str, float] = {
            "error": 1.0 if span.failed or attrs.get(ERROR_TYPE) is not None else 0.0}
        if span.end_ns >= span.start_ns > 0:
            metrics["latency_ms"] = (span.end_ns - span.start_ns) / 1e6
        tokens_in, tokens_out = attrs.get(INPUT_TOKENS), attrs.get(OUTPUT_TOKENS)
        if type(tokens_in) is int and tokens_in >= 0:
            metrics["input_tokens"] = float(tokens_in)
        if type(tokens_out) is int and tokens_out >= 0:
            metrics["output_tokens"] = float(tokens_out)
        model = _text(attrs.get(RESPONSE_MODEL)) or _text(attrs.get(REQUEST_MODEL))
        price = self._spans.price(model) if model and self._spans.prices else None
        if price is not None and type(tokens_in) is int and type(tokens_out) is int:
            metrics["cost_usd"] = (tokens_in * price.input + tokens_out * price.output) / 1e6
        return metrics

    def _evaluation(self, record: Evaluation, signal: str, now: float, out: Result,
                    columns: Columns) -> None:
        attrs = record.attrs
        if attrs.get(ERROR_TYPE) is not None:
            out.skipped["evaluation_error"] += 1
            return
        name = attrs.get(EVALUATION_NAME)
        if type(name) is not str or not name:
            out.rejected.append((None, summary(record, signal), InvalidEvent(
                "missing_evaluation_name", "gen_ai.evaluation.name must be a non-empty string")))
            return
        known = self._names.get(name)
        if known is None:
            known = self._name(name)
        key, evaluator = known
        if evaluator is None:
            out.skipped["unknown_evaluation"] += 1
            out.unknown[name] += 1
            return
        value = evaluator.value(attrs.get(SCORE_VALUE), attrs.get(SCORE_LABEL))
        if type(value) is str:
            detail = (f"{name}: score {attrs.get(SCORE_VALUE)!r}, label "
                      f"{attrs.get(SCORE_LABEL)!r} give no value of {evaluator.metric}")
            out.rejected.append((None, summary(record, signal), InvalidEvent(value, detail)))
            return
        assert isinstance(value, float)
        response = self._response(record)
        keys = self._keys(record, response)
        scored = _scored((record, signal, evaluator.metric, value, _hex_id(
            f"{key}|{record.trace_id}|{record.span_id}|{response}"
            + ("" if keys else f"|{record.time_ns}|{record.observed_ns}|{value}"))))
        self._place(scored, keys, now, out, columns)

    def _place(self, scored: _Scored, keys: tuple[str, ...], now: float, out: Result,
               columns: Columns) -> None:
        record = scored.record
        joined = self.join.lookup(keys) if keys else None
        attrs, span, resource = record.attrs, record.span, record.resource
        release = attrs.get(RELEASE)
        if release is not None:
            base: Output | Resource = joined or resource
        elif span is not None and span.attrs.get(RELEASE) is not None:
            release = span.attrs[RELEASE]
            base = Output(span.attrs.get(SERVICE, resource.service), release,
                          span.attrs.get(COHORT, resource.cohort), 0.0)
        elif joined is not None:
            release, base = joined.release, joined
        elif resource.release is not None or not keys:
            release, base = resource.release, resource
        else:
            self._let_go(self.join.hold(keys, scored, now), out)
            out.held += 1
            return
        ts = joined.ts if joined is not None else (record.time_ns or record.observed_ns) / 1e9
        service = attrs.get(SERVICE, base.service)
        problem = _checked(service, release, ts)
        if problem is not None:
            out.rejected.append((None, summary(record, scored.signal), problem))
            return
        columns.add_one(service, release, attrs.get(COHORT, base.cohort), scored.event_id, ts,
                        scored.metric, scored.value)

    @staticmethod
    def _resolved(scored: list[_Scored], output: Output, out: Result,
                  columns: Columns) -> None:
        for one in scored:  # held evaluations whose output came: it names service and release
            attrs = one.record.attrs
            service = attrs.get(SERVICE, output.service)
            problem = _checked(service, output.release, output.ts)
            if problem is not None:
                out.rejected.append((None, summary(one.record, one.signal), problem))
                continue
            columns.add_one(service, output.release, attrs.get(COHORT, output.cohort),
                            one.event_id, output.ts, one.metric, one.value)


def _checked(service: Any, release: Any, ts: float) -> InvalidEvent | None:
    if release is None:
        return InvalidEvent("release_unknown", "no rollguard.release on the record, its "
                            "span or its resource")
    if type(release) is not str or not release:
        return InvalidEvent("bad_release", "rollguard.release must be a non-empty string")
    if service is None:
        return InvalidEvent("missing_service", "no rollguard.service or service.name")
    if not is_service_name(service):
        return InvalidEvent("bad_service", f"service {str(service)[:160]!r} is not a service "
                            "name")
    if not 0 < ts < 1e12:
        return InvalidEvent("missing_ts", "no time on the record or its output")
    return None

