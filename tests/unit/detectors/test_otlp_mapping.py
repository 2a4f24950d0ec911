"""The policy's opentelemetry section: defaults, validation naming the field, and
``rollguard policy check`` showing the mapping."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from rollguard.base.errors import ConfigError
from rollguard.cli.policy import policy as policy_cli
from rollguard.detectors.evaluations import STANDARD_METRICS, otel_mapping
from rollguard.detectors.policy import default_policy, policy_from_dict
from rollguard.detectors.resolved import policy_document
from tests.support.policies import default_policy_document


def with_section(section: Any) -> dict[str, Any]:
    raw = default_policy_document()
    raw["opentelemetry"] = section
    return raw


BAD = [
    ({"evaluations": {"judge": {"metric": "nope"}}},
     "opentelemetry.evaluations.judge.metric: 'nope' is not a metric of this policy"),
    ({"evaluations": {"judge": {"metric": "accuracy", "better": "up"}}},
     "opentelemetry.evaluations.judge.better: must be one of higher, lower"),
    ({"evaluations": {"judge": {"metric": "accuracy", "labels": {"ok": "yes"}}}},
     "opentelemetry.evaluations.judge.labels: must map labels to numbers"),
    ({"evaluations": {"judge": {"metric": "error", "treshold": 0.5}}},
     "opentelemetry.evaluations.judge.treshold: unknown field"),
    ({"evaluations": ["judge"]}, "opentelemetry.evaluations: must be a table"),
    ({"pass_labels": ["ok"], "fail_labels": ["ok"]},
     "opentelemetry.fail_labels: 'ok' is also a pass label"),
    ({"spans": {"prices": {"gpt-4o": {"input": 2.5}}}},
     "opentelemetry.spans.prices.gpt-4o.output: is required"),
    ({"spans": {"prices": {"gpt-4o": {"input": -1, "output": 1}}}},
     "opentelemetry.spans.prices.gpt-4o.input: must be >= 0.0"),
    ({"spans": {"operations": "chat"}}, "opentelemetry.spans.operations: must be 'all' or"),
    ({"evaluation": {}}, "opentelemetry.evaluation: unknown field"),
    ("yes", "opentelemetry: must be a table of settings"),
]


@pytest.mark.parametrize(("section", "message"), BAD, ids=[m for _, m in BAD])
def test_a_bad_section_is_refused_naming_the_field(section: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        policy_from_dict(with_section(section))


def test_defaults_map_common_names_onto_the_policys_own_metrics_only() -> None:
    mapping = default_policy().opentelemetry
    assert {n: e.metric for n, e in mapping.evaluators.items() if n in (
        "hallucination", "faithfulness", "toxicity", "answer_relevancy", "correctness")} == {
        "hallucination": "hallucination", "faithfulness": "hallucination",
        "toxicity": "toxicity", "answer_relevancy": "accuracy", "correctness": "accuracy"}
    only_errors = {"error": ("rate", "higher")}
    assert otel_mapping(None, only_errors).evaluators == {}
    raw = {"use_defaults": False, "evaluations": {"Judge-X": {"metric": "error"}}}
    assert list(otel_mapping(raw, only_errors).evaluators) == ["judge_x"]


VALUES = [  # (entry, score, label, value or reason)
    ({"metric": "accuracy"}, 0.8, None, 0.8),
    ({"metric": "accuracy", "better": "lower"}, 0.8, None, pytest.approx(0.2)),
    ({"metric": "accuracy", "better": "lower"}, 1.5, None, "score_out_of_range"),
    ({"metric": "hallucination", "threshold": 0.3}, 0.4, None, 1.0),
    ({"metric": "hallucination", "better": "higher", "threshold": 0.3}, 0.4, None, 0.0),
    ({"metric": "hallucination", "labels": {"Yes": 1, "No": 0}}, None, "yes", 1.0),
    ({"metric": "accuracy"}, None, "pass", 1.0),
    ({"metric": "accuracy"}, True, None, "bad_score"),
    ({"metric": "latency_ms"}, 812, None, 812.0),
]


@pytest.mark.parametrize(("entry", "score", "label", "expected"), VALUES)
def test_an_evaluators_score_or_label_becomes_its_metrics_value(
        entry: dict[str, Any], score: Any, label: Any, expected: Any) -> None:
    evaluator = otel_mapping({"evaluations": {"judge": entry}}, STANDARD_METRICS).evaluator("judge")
    assert evaluator is not None and evaluator.value(score, label) == expected


def test_the_resolved_document_reads_back_to_the_same_policy() -> None:
    raw = with_section({"evaluations": {"brand": {"metric": "complaint", "labels": {"off": 1}}},
                        "spans": {"prices": {"gpt-4o": {"input": 2.5, "output": 10}}}})
    chosen = policy_from_dict(raw)
    assert policy_from_dict(policy_document(chosen)) == chosen


def test_policy_check_shows_the_mapping(tmp_path: Any) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(with_section(
        {"evaluations": {"brand voice": {"metric": "complaint"}}})))
    result = CliRunner().invoke(policy_cli, ["check", str(path)])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)["opentelemetry"]
    assert shown["evaluations"]["brand_voice"]["metric"] == "complaint"
    assert shown["evaluations"]["faithfulness"] == {
        "metric": "hallucination", "better": "higher", "threshold": 0.5, "labels": {}}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(with_section({"evaluations": {"x": {"metric": "nope"}}})))
    refused = CliRunner().invoke(policy_cli, ["check", str(bad)])
    assert refused.exit_code == 1 and "opentelemetry.evaluations.x.metric" in refused.output
