"""Invariants of OTLP reading over generated batches: both encodings read alike, and every
record has exactly one outcome."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rollguard.detectors.blocks import Block
from rollguard.detectors.policy import default_policy
from rollguard.streams.otlp.translate import OtlpReader, Result
from tests.support.otlp import T0, encode, evaluation, logs

NAMES = st.sampled_from(["hallucination", "toxicity", "Answer Relevancy", "faithfulness",
                         "brand_voice", ""])
LABELS = st.sampled_from([None, "pass", "fail", "meh"])
SCORES = st.one_of(st.none(), st.floats(-1, 2), st.just(float("nan")))
HEX = st.sampled_from(["", "eee19b7ec3c1b174", "0123456789abcdef"])


@st.composite
def records(draw: st.DrawFn) -> Any:
    attrs: dict[str, Any] = {}
    if draw(st.booleans()):
        attrs["rollguard__release"] = draw(st.sampled_from(["v1", "v2"]))
    if draw(st.integers(0, 9)) == 0:
        attrs["error__type"] = "timeout"
    span = draw(HEX)
    return evaluation(draw(NAMES) or None, score=draw(SCORES), label=draw(LABELS),
                      trace="5b8efff798038103d269b633813fc60c" if span else "", span=span,
                      t=T0 + draw(st.integers(0, 10**12)),
                      event_name=draw(st.sampled_from(["gen_ai.evaluation.result", "log"])),
                      **attrs)


RESOURCES = st.sampled_from([{"service.name": "a"}, {"service.name": "b",
                             "rollguard.release": "r"}, {"rollguard.service": "c"}])
BATCHES = st.lists(st.tuples(RESOURCES, st.lists(records(), max_size=6)), min_size=1,
                   max_size=4)


def outcomes(result: Result) -> int:
    items = sum(len(item) if isinstance(item, Block) else 1
                for group in result.items.values() for item, _raw, _error in group)
    return (items + len(result.rejected) + sum(result.skipped.values()) + result.held)


def comparable(result: Result) -> Any:
    return ({service: [(item, raw, error and error.reason) for item, raw, error in group]
             for service, group in result.items.items()},
            [(raw, error and error.reason) for _item, raw, error in result.rejected],
            result.skipped, result.unknown, result.held, result.records)


@settings(max_examples=60, deadline=None)
@given(BATCHES)
def test_both_encodings_of_a_batch_read_alike_and_each_record_has_one_outcome(
        batch: list[tuple[dict[str, Any], list[Any]]]) -> None:
    request = logs(*batch)
    read = [OtlpReader(default_policy().opentelemetry).read(
        encode(request, encoding), encoding, "logs", 0.0)
        for encoding in ("otlp_proto", "otlp_json")]
    assert repr(comparable(read[0])) == repr(comparable(read[1]))  # NaN scores too
    records = sum(len(part[1]) for part in batch)
    assert read[0].records == records == outcomes(read[0])
