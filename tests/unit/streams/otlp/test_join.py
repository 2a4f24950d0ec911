"""The evaluator join: outputs remembered for a window and a bounded number of keys;
evaluations that come first held, resolved when their output comes, or dead-lettered."""

from __future__ import annotations

from rollguard.detectors.policy import default_policy
from rollguard.streams.otlp.join import Join, Output
from rollguard.streams.otlp.translate import OtlpReader
from tests.support.otlp import (
    EVALUATOR,
    SPAN,
    SPAN2,
    T0,
    TRACE,
    encode,
    evaluation,
    events,
    genai_span,
    logs,
    reasons,
    traces,
)

OUT = Output("chat", "v2", None, 1.0)


def test_outputs_are_forgotten_after_the_window() -> None:
    join: Join[str] = Join(window_s=10, max_entries=100, max_held=100)
    join.remember(("a",), OUT, now=0.0)
    join.remember(("b",), OUT, now=5.0)
    assert join.expire(now=10.0) == [] and join.lookup(("a",)) is OUT
    join.expire(now=10.5)
    assert join.lookup(("a",)) is None and join.lookup(("b",)) is OUT and len(join) == 1


def test_at_most_max_entries_are_kept_the_oldest_forgotten_first() -> None:
    join: Join[str] = Join(window_s=1000, max_entries=3, max_held=100)
    for i in range(5):
        join.remember((f"k{i}",), OUT, now=float(i))
    assert len(join) == 3 and join.lookup(("k1",)) is None and join.lookup(("k2",)) is OUT
    assert join.forgotten == 2


def test_held_evaluations_resolve_once_expire_or_are_let_go_over_the_bound() -> None:
    join: Join[str] = Join(window_s=10, max_entries=100, max_held=2)
    assert join.hold(("s1", "r:x"), "first", now=0.0) == []
    assert join.remember(("r:x",), OUT, now=1.0) == ["first"]
    assert join.remember(("s1",), OUT, now=1.0) == []  # once only
    join.hold(("s2",), "a", now=2.0)
    join.hold(("s3",), "b", now=3.0)
    assert join.hold(("s4",), "c", now=4.0) == ["a"]  # over max_held: the oldest goes
    assert join.expire(now=13.5) == ["b"] and join.held == 1


def reader(window_s: float = 60.0) -> OtlpReader:
    return OtlpReader(default_policy().opentelemetry, Join(window_s, 1000, 1000))


def test_a_separate_evaluators_result_joins_its_output_by_span_id_either_order() -> None:
    bot = {"service.name": "support-bot", "rollguard.release": "v2"}
    spans = encode(traces((bot, [genai_span(TRACE, SPAN, start=T0)])), "otlp_proto")
    verdict = encode(logs((EVALUATOR, [evaluation(label="fail", trace=TRACE, span=SPAN,
                                                  t=T0 + 90 * 10**9)])), "otlp_proto")
    for order in ((spans, "traces"), (verdict, "logs")), ((verdict, "logs"), (spans, "traces")):
        using = reader()
        first = using.read(order[0][0], "otlp_proto", order[0][1], now=0.0)
        second = using.read(order[1][0], "otlp_proto", order[1][1], now=5.0)
        judged = [e for e in events(first) + events(second) if "hallucination" in e.metrics]
        [event] = judged
        assert (event.service, event.release) == ("support-bot", "v2")
        assert event.ts == T0 / 1e9 + 0.8  # the output's time (its span's end), not the verdict's
        assert first.held + second.held == (order[0][1] == "logs")


def test_a_result_joins_by_response_id_and_may_name_service_and_release_itself() -> None:
    using = reader()
    bot = {"service.name": "support-bot", "rollguard.release": "v2"}
    using.read(encode(traces((bot, [genai_span(TRACE, SPAN, gen_ai__response__id="chatcmpl-1")])),
                      "otlp_json"), "otlp_json", "traces", now=0.0)
    result = using.read(encode(logs((EVALUATOR, [
        evaluation(label="pass", gen_ai__response__id="chatcmpl-1"),
        evaluation(label="pass", rollguard__service="other", rollguard__release="r7")])),
        "otlp_json"), "otlp_json", "logs", now=1.0)
    assert sorted((e.service, e.release) for e in events(result)) == [
        ("other", "r7"), ("support-bot", "v2")]


def test_a_result_whose_output_never_comes_is_release_unknown_after_the_window() -> None:
    using = reader(window_s=30)
    held = using.read(encode(logs((EVALUATOR, [evaluation(label="pass", trace=TRACE,
                                                          span=SPAN2)])), "otlp_proto"),
                      "otlp_proto", "logs", now=0.0)
    assert held.held == 1 and not held.rejected and not held.items
    assert not using.expire(now=29.0).rejected
    late = using.expire(now=31.0)
    assert reasons(late) == ["release_unknown"] and SPAN2 in str(late.rejected[0][2])
    nothing = using.read(encode(logs((EVALUATOR, [evaluation(label="pass")])), "otlp_proto"),
                         "otlp_proto", "logs", now=32.0)  # no id to join by: at once
    assert reasons(nothing) == ["release_unknown"] and nothing.held == 0
