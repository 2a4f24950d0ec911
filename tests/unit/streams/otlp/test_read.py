"""OTLP messages read as rollguard events: both encodings, log records and span events,
spans' operational metrics, where service, release and time come from, and bad input."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rollguard.base.errors import ConfigError
from rollguard.detectors.policy import default_policy, policy_from_dict
from rollguard.streams.otlp.translate import OtlpReader, Result
from tests.support.otlp import (
    ENCODINGS,
    EVAL,
    SPAN,
    SPAN2,
    T0,
    TRACE,
    encode,
    evaluation,
    events,
    genai_span,
    logs,
    otlp_json,
    protobuf_json,
    reasons,
    traces,
)
from tests.support.policies import default_policy_document

BOT = {"service.name": "support-bot", "rollguard.release": "v2"}


def reader() -> OtlpReader:
    return OtlpReader(default_policy().opentelemetry)


def read(request: Any, encoding: str, signal: str = "logs", using: OtlpReader | None = None,
         now: float = 0.0) -> Result:
    return (using or reader()).read(encode(request, encoding), encoding, signal, now)


CASES = [  # (id, record, expected metrics or reason)
    ("label pass", evaluation(label="pass"), {"hallucination": 0.0}),
    ("label FAIL", evaluation(label="FAIL"), {"hallucination": 1.0}),
    ("score over threshold", evaluation(score=0.7), {"hallucination": 1.0}),
    ("label over score (rate)", evaluation(score=0.7, label="pass"), {"hallucination": 0.0}),
    ("faithfulness flipped", evaluation("faithfulness", score=0.2), {"hallucination": 1.0}),
    ("toxicity score", evaluation("toxicity", score=0.25, label="pass"), {"toxicity": 0.25}),
    ("relevancy by DeepEval name", evaluation("Answer Relevancy", score=0.9), {"accuracy": 0.9}),
    ("accuracy label", evaluation("correctness", label="incorrect"), {"accuracy": 0.0}),
    ("no score, no label", evaluation(), "missing_score"),
    ("unknown label", evaluation(label="meh"), "unknown_label"),
    ("NaN score", evaluation("toxicity", score=float("nan")), "bad_score"),
    ("string score", evaluation(score=None, gen_ai__evaluation__score__value="0.3"), "bad_score"),
    ("no name", evaluation(None, label="pass"), "missing_evaluation_name"),
    ("score out of range", evaluation("toxicity", score=3.0), "metric_out_of_range"),
    ("accuracy out of range", evaluation("relevance", score=2.0), "metric_out_of_range"),
    ("no time at all", evaluation(label="pass", t=0), "missing_ts"),
    ("observed time", evaluation(label="pass", t=0, observed=T0 + 5 * 10**9), {"ts": 5.0}),
]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(("record", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_an_evaluation_record_becomes_one_metric_or_a_dead_letter(
        encoding: str, record: Any, expected: dict[str, float] | str) -> None:
    result = read(logs((BOT, [record])), encoding)
    if isinstance(expected, str):
        block_reasons = [e.reason for items in result.items.values() for _, _, e in items if e]
        assert reasons(result) + block_reasons == [expected]
        return
    [event] = events(result)
    assert (event.service, event.release) == ("support-bot", "v2")
    if "ts" in expected:
        assert event.ts == T0 / 1e9 + expected["ts"]
    else:
        assert event.metrics == expected and event.ts == T0 / 1e9


def test_the_field_notes_record_as_the_exporter_wrote_it() -> None:
    value = (b'{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":'
             b'{"stringValue":"support-bot"}},{"key":"rollguard.release","value":{"stringValue"'
             b':"v2"}}]},"scopeLogs":[{"scope":{"name":"rollguard.eval"},"logRecords":[{'
             b'"timeUnixNano":"1765074000000000000","observedTimeUnixNano":"1765074000000000000",'
             b'"severityNumber":9,"body":{},"attributes":[{"key":"gen_ai.evaluation.name","value"'
             b':{"stringValue":"hallucination"}},{"key":"gen_ai.evaluation.score.label","value":'
             b'{"stringValue":"pass"}}],"traceId":"5b8efff798038103d269b633813fc60c","spanId":'
             b'"eee19b7ec3c1b174","eventName":"gen_ai.evaluation.result"}]}]}]}')
    [event] = events(reader().read(value, "otlp_json", "logs", 0.0))
    assert (event.service, event.release, event.ts, event.metrics) == (
        "support-bot", "v2", 1765074000.0, {"hallucination": 0.0})


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_errored_evaluations_other_logs_and_unknown_names_are_counted_not_judged(
        encoding: str) -> None:
    result = read(logs((BOT, [
        evaluation(label="pass", error__type="timeout"),
        evaluation(label="pass", event_name="app.log"),
        evaluation("brand_voice", score=0.3), evaluation("brand_voice", score=0.4),
        evaluation("Tone", label="pass"), evaluation(label="pass")])), encoding)
    assert result.records == 6 and len(events(result)) == 1 and not result.rejected
    assert result.skipped == {"evaluation_error": 1, "not_evaluation": 1,
                              "unknown_evaluation": 3}
    assert result.unknown == {"brand_voice": 2, "Tone": 1}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_batch_of_many_services_gives_each_its_own_events(encoding: str) -> None:
    result = read(logs(
        ({"service.name": "a", "rollguard.release": "1"}, [evaluation(label="pass")] * 2),
        ({"service.name": "b", "rollguard.release": "7", "rollguard.cohort": "eu"},
         [evaluation("toxicity", score=0.1)]),
        ({"service.name": "c", "rollguard.service": "d", "rollguard.release": "9"},
         [evaluation(label="fail", rollguard__service="e")])), encoding)
    got = sorted((e.service, e.release, e.cohort, tuple(e.metrics)) for e in events(result))
    assert got == [("a", "1", "", ("hallucination",)), ("a", "1", "", ("hallucination",)),
                   ("b", "7", "eu", ("toxicity",)), ("e", "9", "", ("hallucination",))]
    assert sorted(result.items) == ["a", "b", "e"]


LOOKUP = [  # (record attributes, span attributes, resource, expected (service, release))
    ({"rollguard__release": "rec"}, {"rollguard.release": "span"}, BOT, ("support-bot", "rec")),
    ({}, {"rollguard.release": "span"}, BOT, ("support-bot", "span")),
    ({}, {"rollguard.release": "span", "rollguard.service": "other"}, BOT, ("other", "span")),
    ({}, {}, BOT, ("support-bot", "v2")),
    ({"rollguard__service": "x"}, {}, BOT, ("x", "v2")),
]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(("own", "on_span", "resource", "expected"), LOOKUP)
def test_release_is_looked_up_on_the_record_then_its_span_then_the_resource(
        encoding: str, own: dict[str, Any], on_span: dict[str, Any], resource: dict[str, Any],
        expected: tuple[str, str]) -> None:
    own = {k.replace("__", "."): v for k, v in own.items()}
    span = genai_span(TRACE, SPAN, operation=None, events=(
        (EVAL, {"gen_ai.evaluation.name": "hallucination",
                "gen_ai.evaluation.score.label": "pass", **own}),),
        **{k.replace(".", "__"): v for k, v in on_span.items()})
    result = read(traces((resource, [span])), encoding, "traces")
    [event] = events(result)
    assert (event.service, event.release) == expected
    assert result.skipped == {"not_genai": 1}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_genai_span_gives_latency_errors_tokens_and_cost(encoding: str) -> None:
    raw = default_policy_document()
    raw["opentelemetry"] = {"spans": {"prices": {"gpt-4o": {"input": 2.5, "output": 10}}}}
    using = OtlpReader(policy_from_dict(raw).opentelemetry)
    result = read(traces((BOT, [
        genai_span(TRACE, SPAN, ms=812.5, gen_ai__request__model="gpt-4o-2024-08-06",
                   gen_ai__usage__input_tokens=1000, gen_ai__usage__output_tokens=200),
        genai_span(TRACE, SPAN2, failed=True, gen_ai__request__model="local"),
        genai_span(TRACE, "1111111111111111", error__type="rate_limited"),
        genai_span(TRACE, "2222222222222222", operation=None)])), encoding, "traces", using)
    got = sorted(((-len(e.metrics), e.metrics) for e in events(result)), key=lambda g: g[0])
    assert got[0][1] == {"error": 0.0, "latency_ms": 812.5, "input_tokens": 1000.0,
                         "output_tokens": 200.0, "cost_usd": pytest.approx(0.0045)}
    assert [m["error"] for _, m in got] == [0.0, 1.0, 1.0]
    assert result.skipped == {"not_genai": 1}


def test_span_operations_can_be_chosen_or_switched_off() -> None:
    spans = traces((BOT, [genai_span(TRACE, SPAN, operation="embeddings"),
                          genai_span(TRACE, SPAN2)]))
    for section, skipped in (({"operations": ["chat"]}, {"operation_ignored": 1}),
                             ({"enabled": False}, {"spans_off": 2})):
        raw = default_policy_document()
        raw["opentelemetry"] = {"spans": section}
        using = OtlpReader(policy_from_dict(raw).opentelemetry)
        result = read(spans, "otlp_proto", "traces", using)
        assert result.skipped == skipped and len(events(result)) == 2 - sum(skipped.values())


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_event_ids_are_stable_across_redelivery_and_encodings(encoding: str) -> None:
    batch = logs((BOT, [evaluation(label="pass", trace=TRACE, span=SPAN),
                        evaluation("toxicity", score=0.1, trace=TRACE, span=SPAN),
                        evaluation(label="pass", t=T0 + 1)]))
    first = [e.event_id for e in events(read(batch, encoding))]
    assert first == [e.event_id for e in events(read(batch, "otlp_proto"))]
    assert len(set(first)) == 3 and all(len(i) == 16 for i in first)


# Bad input: each record its own dead letter, the rest of the batch kept.


def test_malformed_protobuf_and_json_are_one_dead_letter_each() -> None:
    for value, encoding, reason in ((b"\xff\xff\xff", "otlp_proto", "bad_otlp"),
                                    (b"{nope", "otlp_json", "not_json"),
                                    (b"[1, 2]", "otlp_json", "bad_otlp"),
                                    (b'{"resourceLogs": {}}', "otlp_json", "bad_otlp"),
                                    (b"", "otlp_proto", "empty_message")):
        result = reader().read(value, encoding, "logs", 0.0)
        assert reasons(result) == [reason] and not result.items


def test_protobufs_own_json_with_base64_ids_is_a_bad_record_the_rest_kept() -> None:
    batch = logs((BOT, [evaluation(label="pass", trace=TRACE, span=SPAN),
                        evaluation(label="fail")]))
    value = orjson.dumps(protobuf_json(batch))
    result = reader().read(value, "otlp_json", "logs", 0.0)
    assert reasons(result) == ["bad_trace_id"] and len(events(result)) == 1


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_bad_ids_lengths_are_dead_letters(encoding: str) -> None:
    value = encode(logs((BOT, [evaluation(label="pass")] * 2)), encoding)
    if encoding == "otlp_json":
        doc = orjson.loads(value)
        doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["spanId"] = "abc"
        value = orjson.dumps(doc)
    else:
        request = logs((BOT, [evaluation(label="pass"), evaluation(label="pass")]))
        request.resource_logs[0].scope_logs[0].log_records[0].span_id = b"\x01\x02"
        value = request.SerializeToString()
    result = reader().read(value, encoding, "logs", 0.0)
    assert reasons(result) == ["bad_span_id"] and len(events(result)) == 1


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_million_attribute_record_is_a_dead_letter_the_rest_kept(encoding: str) -> None:
    batch = logs((BOT, [evaluation(label="fail"), evaluation(label="pass"),
                        evaluation(label="pass")]))
    if encoding == "otlp_proto":
        big = batch.resource_logs[0].scope_logs[0].log_records[1]
        big.attributes.extend(big.attributes[:1] * 1_000_000)
        value = batch.SerializeToString()
    else:
        doc = orjson.loads(otlp_json(batch))
        pairs = doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][1]["attributes"]
        pairs += pairs[:1] * 1_000_000
        value = orjson.dumps(doc)
    result = reader().read(value, encoding, "logs", 0.0)
    assert reasons(result) == ["too_many_attributes"] and len(events(result)) == 2
    assert result.rejected[0][1]["attributes_count"] == 1_000_002


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_records_without_release_are_dead_letters_that_say_so(encoding: str) -> None:
    named = evaluation(label="pass", rollguard__release="1")
    result = read(logs(({"service.name": "bot"}, [evaluation(label="pass"), named]),
                       ({"service.name": "bad name"}, [named])), encoding)
    assert reasons(result) == ["release_unknown", "bad_service"]
    assert len(events(result)) == 1
    assert result.rejected[0][1]["attributes"]["gen_ai.evaluation.name"] == "hallucination"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_resource_with_too_many_attributes_rejects_its_records_only(encoding: str) -> None:
    crowded = {f"k{i}": i for i in range(200)}
    result = read(logs((crowded, [evaluation(label="pass")] * 2),
                       (BOT, [evaluation(label="pass")])), encoding)
    assert reasons(result) == ["too_many_attributes"] * 2 and len(events(result)) == 1


def test_unknown_encoding_or_signal_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="otlp_proto"):
        reader().read(b"x", "json", "logs", 0.0)
