"""The OTLP loop with no Faust and a fake clock: each service's events forwarded keyed by
service, one dead letter per bad record, and acknowledgements only when nothing of the
message (nor of an earlier one) is held by the join, in offset order."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rollguard.detectors.blocks import Block, block_as_events
from rollguard.detectors.policy import default_policy
from rollguard.streams.otlp.loop import MAX_NAMES_SHOWN, OTHER_NAME, OtlpLoop, encoded
from rollguard.streams.partition import Effects
from rollguard.streams.wire import read_message
from tests.support.otlp import T0, encode, evaluation, genai_span, logs, traces

TRACE = "5b8efff798038103d269b633813fc60c"
TOPICS = {"logs": "otlp_logs", "traces": "otlp_spans"}


def new_loop(encoding: str = "otlp_proto", **options: Any) -> OtlpLoop[str]:
    return OtlpLoop(default_policy().opentelemetry, encoding, TOPICS, **options)


def span_id(i: int) -> str:
    return f"{i + 1:016x}"


def batch(services: int, per_service: int, *, release: str | None = "v2") -> Any:
    """A logs request of ``services`` services, ``per_service`` evaluations each."""
    parts = []
    for s in range(services):
        resource = {"service.name": f"svc-{s}"}
        if release is not None:
            resource["rollguard.release"] = release
        parts.append((resource, [evaluation(label="fail" if i % 3 else "pass",
                                            trace=TRACE, span=span_id(s * 1000 + i),
                                            t=T0 + i * 10**9)
                                 for i in range(per_service)]))
    return logs(*parts)


def forwarded(out: Effects[str]) -> dict[str, list[str]]:
    """The event ids forwarded, by the key they are forwarded under."""
    found: dict[str, list[str]] = {}
    for key, value in out.forwards:
        for item, _raw, error in read_message(value):
            assert error is None and item is not None
            ids = [e.event_id for e in (block_as_events(item) if isinstance(item, Block)
                                        else [item])]
            assert {e.service for e in (block_as_events(item) if isinstance(item, Block)
                                        else [item])} == {key.decode()}
            found.setdefault(key.decode(), []).extend(ids)
    return found


def reasons(out: Effects[str]) -> list[str]:
    return [orjson.loads(d)["reason"] for d in out.dead]


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_a_batch_of_services_is_forwarded_per_service_and_acknowledged(encoding: str) -> None:
    loop = new_loop(encoding)
    out = loop.on_message("logs", 0, 0, encode(batch(3, 100), encoding), 0.0, "m0")
    assert {k: len(v) for k, v in forwarded(out).items()} == {f"svc-{s}": 100 for s in range(3)}
    assert out.acks == ["m0"] and not out.dead and out.events == 300
    assert loop.counts["records"] == 300 and loop.counts["forwards"] == 3


def test_the_same_batch_read_twice_forwards_the_same_event_ids() -> None:
    value = encode(batch(2, 50), "otlp_proto")
    first = new_loop().on_message("logs", 0, 0, value, 0.0, "a")
    again = new_loop("otlp_json").on_message("logs", 0, 0, encode(batch(2, 50), "otlp_json"),
                                             5.0, "b")
    assert forwarded(first) == forwarded(again)


def test_bad_records_are_dead_letters_and_the_rest_is_forwarded() -> None:
    request = batch(1, 10)
    records = request.resource_logs[0].scope_logs[0].log_records
    records.append(evaluation(None, label="pass", span=span_id(99), trace=TRACE))
    too_many = evaluation(label="pass", span=span_id(98), trace=TRACE)
    too_many.attributes.extend(too_many.attributes[:1] * 200)
    records.append(too_many)
    loop = new_loop()
    out = loop.on_message("logs", 0, 0, encode(request, "otlp_proto"), 0.0, "m")
    assert sorted(reasons(out)) == ["missing_evaluation_name", "too_many_attributes"]
    assert len(forwarded(out)["svc-0"]) == 10 and out.acks == ["m"]
    bad = loop.on_message("logs", 0, 1, b"\xff\x00not protobuf", 0.0, "bad")
    assert reasons(bad) == ["bad_otlp"] and bad.acks == ["bad"] and not bad.forwards
    assert loop.rejections == {"missing_evaluation_name": 1, "too_many_attributes": 1,
                               "bad_otlp": 1}


def held_request() -> Any:
    # an evaluator in its own process: its result names neither service nor release
    return logs(({"service.name": "judge"},
                 [evaluation(label="fail", trace=TRACE, span=span_id(7))]))


def output_request() -> Any:
    return traces(({"service.name": "chat", "rollguard.release": "v2"},
                   [genai_span(TRACE, span_id(7))]))


def test_a_held_record_holds_its_message_and_every_later_one_until_its_output_comes() -> None:
    loop = new_loop()
    held = loop.on_message("logs", 0, 0, encode(held_request(), "otlp_proto"), 0.0, "held")
    later = loop.on_message("logs", 0, 1, encode(batch(1, 5), "otlp_proto"), 1.0, "later")
    assert held.acks == [] and later.acks == [] and len(forwarded(later)["svc-0"]) == 5
    assert loop.waiting == 2
    out = loop.on_message("traces", 0, 0, encode(output_request(), "otlp_proto"), 2.0, "span")
    assert out.acks == ["held", "later", "span"]
    assert len(forwarded(out)["chat"]) == 2  # the span's own event and the evaluation's
    assert loop.waiting == 0


def test_a_held_record_whose_output_never_comes_is_a_dead_letter_after_its_window() -> None:
    loop = new_loop()
    loop.on_message("logs", 1, 0, encode(held_request(), "otlp_proto"), 0.0, "held")
    assert loop.on_timer(299.0).acks == []
    out = loop.on_timer(301.0)
    assert reasons(out) == ["release_unknown"] and out.acks == ["held"]


@pytest.mark.parametrize("lag", [60.0, 300.0, 900.0, 1790.0])
def test_a_result_that_comes_minutes_after_its_output_still_joins_it(lag: float) -> None:
    """A judge's result naming only its output's span, read 1 to 30 minutes (of the
    worker's clock) after the span: the output is remembered as long as the policy's
    evaluation_lateness_seconds, so the result is forwarded at once, in its output's time."""
    loop = new_loop()
    loop.on_message("traces", 0, 0, encode(output_request(), "otlp_proto"), 0.0, "span")
    out = loop.on_message("logs", 0, 0, encode(held_request(), "otlp_proto"), lag, "late")
    assert out.acks == ["late"] and reasons(out) == [] and len(forwarded(out)["chat"]) == 1
    assert loop.join.held == 0


def test_an_output_is_forgotten_once_its_results_would_come_too_late() -> None:
    """Past evaluation_lateness_seconds the output is forgotten: a result after it is held,
    and let go as release_unknown after the join's window."""
    loop = new_loop()
    loop.on_message("traces", 0, 0, encode(output_request(), "otlp_proto"), 0.0, "span")
    out = loop.on_message("logs", 0, 0, encode(held_request(), "otlp_proto"), 1801.0, "late")
    assert out.acks == [] and loop.join.held == 1
    assert reasons(loop.on_timer(1801.0 + 301.0)) == ["release_unknown"]


def test_messages_waiting_behind_held_records_are_bounded() -> None:
    loop = new_loop(max_unacked=2)
    acks: list[str] = []
    dead: list[str] = []
    for offset in range(3):
        out = loop.on_message("logs", 0, offset, encode(held_request(), "otlp_proto"),
                              float(offset), f"m{offset}")
        acks += out.acks
        dead += reasons(out)
    assert acks == ["m0"] and dead == ["release_unknown"] and loop.waiting == 2


def test_a_skipped_offset_is_sought_back_and_the_message_after_it_acknowledged_later() -> None:
    loop = new_loop()
    value = encode(batch(1, 3), "otlp_proto")
    assert loop.on_message("logs", 2, 10, value, 0.0, "m10").acks == ["m10"]
    out = loop.on_message("logs", 2, 12, value, 0.1, "m12")
    assert out.seeks == [(2, 11)] and out.acks == [] and not out.forwards
    assert loop.on_message("logs", 2, 11, value, 0.2, "m11").acks == ["m11"]
    assert loop.on_message("logs", 2, 12, value, 0.3, "m12").acks == ["m12"]


def test_a_rebalance_drops_held_records_but_remembers_outputs() -> None:
    loop = new_loop()
    loop.on_message("traces", 0, 0, encode(output_request(), "otlp_proto"), 0.0, "span")
    loop.on_message("logs", 0, 0, encode(logs(({"service.name": "judge"}, [
        evaluation(label="fail", trace=TRACE, span=span_id(8))])), "otlp_proto"), 0.0, "held")
    loop.on_revoked()
    assert loop.join.held == 0 and loop.waiting == 0
    out = loop.on_message("logs", 0, 5, encode(held_request(), "otlp_proto"), 1.0, "again")
    assert out.acks == ["again"] and forwarded(out) == {"chat": forwarded(out)["chat"]}


def test_unknown_evaluation_names_are_counted_by_name_up_to_a_bound() -> None:
    loop = new_loop()
    records = [evaluation(f"judge_{i}", label="pass", span=span_id(i), trace=TRACE)
               for i in range(MAX_NAMES_SHOWN + 5)]
    out = loop.on_message("logs", 0, 0, encode(logs(({"service.name": "a",
                                                       "rollguard.release": "v"}, records)),
                                               "otlp_proto"), 0.0, "m")
    assert out.acks == ["m"] and not out.dead
    assert len(loop.unknown) == MAX_NAMES_SHOWN + 1 and loop.unknown[OTHER_NAME] == 5
    assert loop.skipped["unknown_evaluation"] == MAX_NAMES_SHOWN + 5


def test_large_forwards_are_split_below_the_limit_and_keep_every_event() -> None:
    block: dict[str, Any] = {"service": "s", "release": "r",
                             "event_id": [f"e{i}" for i in range(1000)],
                             "ts": [1.0 + i for i in range(1000)], "metrics": {"error": [0] * 1000}}
    values = encoded([block, dict(block)], limit=8_000)
    assert len(values) > 2 and all(len(v) <= 8_000 for v in values)
    ids = [i for v in values for b in orjson.loads(v) for i in b["event_id"]]
    assert ids == block["event_id"] * 2


def test_a_partition_stalled_short_of_its_end_is_sought_again() -> None:
    loop = new_loop()
    assert loop.on_message("traces", 1, 4, encode(output_request(), "otlp_proto"), 0.0,
                           "m4").acks == ["m4"]
    lane = loop.lane("traces", 1)
    assert loop.on_timer(1.0, {lane: 9}).seeks == []
    assert loop.on_timer(4.5, {lane: 9}).seeks == [(lane, 5)]


def test_gathered_forwards_leave_once_their_linger_passed_as_one_per_service() -> None:
    loop = new_loop(linger_s=0.05)
    first = loop.on_message("logs", 0, 0, encode(batch(3, 10), "otlp_proto"), 0.0, "m0")
    second = loop.on_message("logs", 0, 1, encode(batch(3, 10), "otlp_proto"), 0.01, "m1")
    assert not first.forwards and not second.forwards
    assert not first.acks and not second.acks  # nothing acknowledged before it is forwarded
    assert not loop.on_tick(0.04).forwards
    due = loop.on_tick(0.05)
    assert {k: len(v) for k, v in forwarded(due).items()} == {f"svc-{s}": 20 for s in range(3)}
    assert len(due.forwards) == 3 and due.acks == ["m0", "m1"]
    assert not loop.on_tick(1.0).forwards


def test_gathered_forwards_leave_at_once_past_the_most_records() -> None:
    loop = new_loop(linger_s=60.0, max_gathered=25)
    first = loop.on_message("logs", 0, 0, encode(batch(2, 10), "otlp_proto"), 0.0, "m0")
    second = loop.on_message("logs", 0, 1, encode(batch(2, 10), "otlp_proto"), 0.0, "m1")
    assert not first.forwards and not first.acks
    assert {k: len(v) for k, v in forwarded(second).items()} == {"svc-0": 20, "svc-1": 20}
    assert second.acks == ["m0", "m1"]


def test_a_span_that_frees_a_held_evaluation_of_another_lane_acknowledges_neither_until_sent(
        ) -> None:
    loop = new_loop(linger_s=0.05)
    held = logs(({"service.name": "judge"}, [evaluation(label="fail", trace=TRACE,
                                                        span=span_id(1))]))
    out = loop.on_message("logs", 0, 0, encode(held, "otlp_proto"), 0.0, "eval")
    assert not out.acks and not out.forwards
    span = traces(({"service.name": "chat", "rollguard.release": "v2"},
                   [genai_span(TRACE, span_id(1))]))
    freed = loop.on_message("traces", 0, 0, encode(span, "otlp_proto"), 0.01, "span")
    assert not freed.acks and not freed.forwards
    due = loop.on_tick(0.1)
    assert sorted(due.acks) == ["eval", "span"] and forwarded(due)["chat"]


def test_a_rebalance_drops_what_was_gathered_so_the_new_owner_reads_it_again() -> None:
    loop = new_loop(linger_s=0.05)
    loop.on_message("logs", 0, 0, encode(batch(1, 5), "otlp_proto"), 0.0, "m0")
    loop.on_revoked()
    assert not loop.on_tick(1.0).forwards
    again = loop.on_message("logs", 0, 0, encode(batch(1, 5), "otlp_proto"), 1.0, "m0")
    assert not again.forwards and loop.on_tick(1.05).acks == ["m0"]
