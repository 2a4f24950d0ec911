"""Events gathered into block columns (streams/otlp/columns.py): a cohort that is no
string is each event's own dead letter, the rest of the message judged."""

from __future__ import annotations

from rollguard.detectors.policy import default_policy
from rollguard.streams.otlp.translate import OtlpReader
from tests.support.otlp import encode, evaluation, events, logs

BOT = {"service.name": "support-bot", "rollguard.release": "v2"}


def test_an_array_cohort_is_a_bad_cohort_dead_letter_and_the_rest_is_judged() -> None:
    request = logs((BOT, [evaluation(label="pass", rollguard__cohort=["eu", "us"]),
                          evaluation(label="fail", rollguard__cohort="eu"),
                          evaluation(label="pass", t=1_765_074_000_000_000_001)]))
    result = OtlpReader(default_policy().opentelemetry).read(
        encode(request, "otlp_proto"), "otlp_proto", "logs", 0.0)
    [items] = result.items.values()
    assert [error.reason for _item, _raw, error in items if error] == ["bad_cohort"]
    assert sorted(e.cohort for e in events(result.__class__(
        items={"support-bot": [i for i in items if i[2] is None]}))) == ["", "eu"]
