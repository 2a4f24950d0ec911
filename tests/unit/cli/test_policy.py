"""`rollguard policy check` and `rollguard policy explain`."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml
from click.testing import CliRunner

from rollguard.cli import main
from rollguard.detectors.policy import default_policy, policy_from_dict
from tests.support.policies import default_policy_text

DEFAULT_YAML = default_policy_text()


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_check_prints_the_policy_resolved_and_it_reads_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "default.yaml"
    path.write_text(DEFAULT_YAML)
    code, out, _ = run("policy", "check", str(path))
    assert code == 0, out
    assert policy_from_dict(yaml.safe_load(out), name="default") == default_policy()


def test_check_fills_in_every_default(tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text('[metrics.error]\nstatistic = "rate"\ntolerance = 0.02\n')
    code, out, _ = run("policy", "check", str(path))
    assert code == 0, out
    doc = yaml.safe_load(out)
    assert doc["name"] == "small" and doc["bucket_seconds"] == 10.0
    assert doc["transient_evidence"] == 8.0 and doc["transient_min_samples"] == 30
    assert doc["metrics"]["error"] == {
        "statistic": "rate", "worse": "higher", "tolerance": 0.02, "relative": False,
        "min_samples": 200, "action": "rollback", "components": "all", "critical": True,
        "cohort_action": "alert"}
    assert doc["composites"] == []
    assert doc["approvals"] == {"approvers": [], "rules": {}, "pinned_full_rollback": 2}


@pytest.mark.parametrize(("text", "field"), [
    ("metrics:\n  error: {statistic: rate, tolerance: 0}\n", "metrics.error.tolerance"),
    ("metrics:\n  error: {statistic: rate, tolerance: 0.01, tolerence: 2}\n",
     "metrics.error.tolerence: unknown field"),
    ("transient_min_samples: 0\nmetrics:\n  error: {statistic: rate, tolerance: 0.01}\n",
     "transient_min_samples"),
    ("transient_evidence: -1\nmetrics:\n  error: {statistic: rate, tolerance: 0.01}\n",
     "transient_evidence"),
])
def test_check_names_the_bad_field_and_fails(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = run("policy", "check", str(path))
    assert code == 1 and out == ""
    assert field in err


def _explain(*args: str) -> dict:
    code, out, err = run("policy", "explain", "--rate", "20", "--runs", "2", "--json",
                         "--no-rollout", *args)  # (the rollout: test_policy_rollout.py)
    assert code == 0, out + err
    found: dict = orjson.loads(out)
    return found


def test_explain_measures_every_metric_and_says_on_how_many_runs() -> None:
    found = _explain()
    assert (found["runs_per_shift"], found["events_per_s"], found["share"]) == (2, 20.0, 0.5)
    assert [m["metric"] for m in found["metrics"]] == list(default_policy().metrics)
    for metric in found["metrics"]:
        assert set(metric["shifts"]) == {"1.5x", "2x", "4x"}
        assert all(s["runs"] == 2 for s in metric["shifts"].values())
        four, two = metric["shifts"]["4x"], metric["shifts"]["2x"]
        assert four["caught"] == 2 and four["median_min"] <= two["median_min"]
        assert metric["false_rollbacks"] == 0 and metric["healthy_days"] > 0
        assert metric["lowest_events_per_s_judged_within_1h"] <= 20


def test_explain_is_seeded() -> None:
    def figures(found: dict) -> list:
        return found["metrics"]
    assert figures(_explain("--seed", "3")) == figures(_explain("--seed", "3"))


def test_explain_prints_a_table_naming_its_run_counts() -> None:
    code, out, _ = run("policy", "explain", "--rate", "20", "--runs", "2")
    assert code == 0, out
    assert "2 runs per shift" in out and "| latency_ms p95 | 600 | +25 % |" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--rate", "0"], "--rate"),
    (["--rate", "2", "--share", "1.5"], "--share"),
    (["--rate", "2", "--base", "bogus=1"], "'bogus' is not a metric"),
    (["--rate", "2", "--base", "error=lots"], "--base: error"),
])
def test_explain_refuses_bad_options_by_name(args: list[str], message: str) -> None:
    code, _, err = run("policy", "explain", *args)
    assert code == 1 and message in err


def test_explain_asks_for_the_healthy_level_of_an_unknown_metric(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("metrics:\n  refusal: {statistic: rate, tolerance: 0.01}\n")
    code, _, err = run("policy", "explain", str(path), "--rate", "2")
    assert code == 1 and "--base refusal=VALUE" in err
    found = _explain(str(path), "--base", "refusal=0.02")
    assert [m["metric"] for m in found["metrics"]] == ["refusal"]


def test_check_shows_the_evaluation_lane_resolved(tmp_path: Path) -> None:
    """`policy check` names the metrics judged on the evaluations' clock and their bound."""
    path = tmp_path / "default.yaml"
    path.write_text(DEFAULT_YAML)
    code, out, _ = run("policy", "check", str(path))
    section = yaml.safe_load(out)["opentelemetry"]
    assert code == 0 and section["evaluation_lateness_seconds"] == 1800.0
    assert section["evaluation_metrics"] == ["accuracy", "complaint", "hallucination",
                                             "toxicity"]


def test_explain_measures_how_late_evaluations_delay_a_rollback() -> None:
    """Per evaluation metric, minutes to a rollback at lags of 0, 1, 5 and 15 minutes: with
    its lane each is caught, about the lag later than at none; on one clock, results 15
    minutes late are never counted."""
    found = _explain("--runs", "2")
    lagged = {m["metric"]: m for m in found["evaluation_lag"]}
    assert sorted(lagged) == ["accuracy", "complaint", "hallucination", "toxicity"]
    for m in lagged.values():
        assert set(m["lanes"]) == {"0min", "1min", "5min", "15min"}
        assert all(s["caught"] == 2 for s in m["lanes"].values())
        assert m["lanes"]["15min"]["median_min"] >= m["lanes"]["0min"]["median_min"] + 14
        assert m["one_clock"]["15min"]["caught"] == 0


def test_explain_prints_the_evaluation_lag_table() -> None:
    code, out, _ = run("policy", "explain", "--rate", "20", "--runs", "2")
    assert code == 0, out
    assert "| metric | clock | lag 0 min | lag 1 min | lag 5 min | lag 15 min |" in out
    assert "| hallucination | one clock |" in out and "never / never |" in out
