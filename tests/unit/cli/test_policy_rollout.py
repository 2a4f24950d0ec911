"""`rollguard policy explain` on a guarded rollout: the plan's steps measured on the decision
core (analysis/explain_rollout.py), in the table and in the JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from rollguard.cli import main

SMALL = """\
rollout:
  steps: [10, 50, 100]
  min_seconds: 120
  min_samples: 100
  limit_seconds: 1800
  bake_seconds: 300
metrics:
  error: {statistic: rate, tolerance: 0.02}
"""
WITHOUT = "metrics:\n  error: {statistic: rate, tolerance: 0.02}\n"
ARGS = ("--rate", "10", "--rollout-rate", "2", "--base", "error=0.01", "--runs", "6")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["policy", "explain", *args])
    return result.exit_code, result.stdout, result.stderr


def policy_file(tmp_path: Path, text: str = SMALL) -> str:
    path = tmp_path / "small.yaml"
    path.write_text(text)
    return str(path)


def explained(*args: str) -> dict[str, Any]:
    code, out, err = run(*args, "--json")
    assert code == 0, out + err
    found: dict[str, Any] = orjson.loads(out)
    return found


def test_explain_measures_each_step_of_the_policys_rollout(tmp_path: Path) -> None:
    """An equal candidate passes every step in finite time and becomes stable; candidates
    worse by 1.5x and 2x the tolerance pass a step rarely (here: never)."""
    rollout = explained(policy_file(tmp_path), *ARGS)["rollout"]
    assert [row["percent"] for row in rollout["steps"]] == [10.0, 50.0]
    assert (rollout["stable"], rollout["runs"], rollout["runs_per_step"]) == (6, 6, 6)
    assert 2 <= rollout["to_stable_median_min"] <= rollout["to_stable_p90_min"] < 60
    # at 100 % a bake of 5 minutes before stable
    assert rollout["to_100_median_min"] + 5 == pytest.approx(rollout["to_stable_median_min"],
                                                             abs=0.5)
    for row in rollout["steps"]:
        assert row["passed"] == row["runs"] == 6
        assert 2 <= row["median_min"] <= row["p90_min"] < 30  # min_seconds is 2 minutes
        for shift in ("1.5x", "2x"):
            assert row[shift]["runs"] == 6 and row[shift]["passed"] <= 1
    assert rollout["plan"]["steps"] == [10.0, 50.0, 100.0]
    assert rollout["blind_advances"] == 0


def test_explain_prints_the_rollout_table_after_the_metrics(tmp_path: Path) -> None:
    code, out, _ = run(policy_file(tmp_path), *ARGS)
    assert code == 0, out
    text = out[out.index("guarded rollout at 2 candidate events/s at every step"):]
    assert "6 of 6 candidates as good as the stable became stable" in text
    assert "| step | minutes to pass, median / p90 |" in text
    assert "| 10 % |" in text and "| 50 % |" in text and "| 100 % |" not in text
    assert "6 runs per step and shift" in text


def test_explain_of_the_rollout_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    def figures(seed: str) -> dict[str, Any]:
        rollout = explained(policy_file(tmp_path), *ARGS, "--seed", seed)["rollout"]
        rollout.pop("cpu_seconds")
        return rollout
    assert figures("4") == figures("4")


@pytest.mark.parametrize(("text", "flag", "shown"), [
    (SMALL, None, True),
    (SMALL, "--no-rollout", False),
    (WITHOUT, None, False),
    (WITHOUT, "--rollout", True),
])
def test_explain_shows_the_rollout_when_the_policy_has_one_or_when_asked(
        tmp_path: Path, text: str, flag: str | None, shown: bool) -> None:
    args = [policy_file(tmp_path, text), "--rate", "10", "--base", "error=0.01", "--runs", "2"]
    found = explained(*args, *([flag] if flag else []))
    assert ("rollout" in found) is shown


def test_explain_of_the_shipped_policy_leaves_the_rollout_out_unless_asked() -> None:
    found = explained("--rate", "10", "--runs", "2")
    assert "rollout" not in found and found["metrics"]


def test_explain_refuses_a_rollout_rate_above_the_rate(tmp_path: Path) -> None:
    code, _, err = run(policy_file(tmp_path), "--rate", "2", "--rollout-rate", "3")
    assert code == 1 and "--rollout-rate" in err
