"""Policies load from YAML or TOML, and a mistake is refused with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rollguard.base.errors import ConfigError
from rollguard.detectors.policy import default_policy, load_policy, policy_from_dict
from rollguard.detectors.resolved import policy_document

MINIMAL = {"metrics": {"error": {"statistic": "rate", "tolerance": 0.01}}}


def test_default_policy_has_the_tolerances_of_the_issue() -> None:
    """The shipped defaults: +2 pp, +1 pp, -3 pp, p95 +25 %, +1 pp, +1 pp, mean +25 %."""
    rules = default_policy().metrics
    expected = {
        "hallucination": ("rate", "higher", 0.02, False),
        "toxicity": ("share", "higher", 0.01, False),
        "accuracy": ("mean", "lower", 0.03, False),
        "latency_ms": ("quantile", "higher", 0.25, True),
        "error": ("rate", "higher", 0.01, False),
        "complaint": ("rate", "higher", 0.01, False),
        "cost_usd": ("mean", "higher", 0.25, True),
    }
    got = {n: (r.statistic, r.worse, r.tolerance, r.relative) for n, r in rules.items()}
    assert got == expected
    assert rules["latency_ms"].q == 0.95 and rules["latency_ms"].components == ("model",)
    assert rules["toxicity"].threshold == 0.5


def test_yaml_and_toml_files_give_the_same_policy(tmp_path: Path) -> None:
    """The same settings read from YAML and from TOML are equal."""
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(MINIMAL))
    (tmp_path / "p.toml").write_text('[metrics.error]\nstatistic = "rate"\ntolerance = 0.01\n')
    assert load_policy(tmp_path / "p.yaml").metrics == load_policy(tmp_path / "p.toml").metrics


def _with(path: str, value: object) -> dict:
    raw = yaml.safe_load(yaml.safe_dump(MINIMAL))
    target = raw
    *parents, last = path.split(".")
    for key in parents:
        target = target.setdefault(key, {})
    target[last] = value
    return raw


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (_with("metrics.error.tolerance", 0), "metrics.error.tolerance: must be > 0"),
        (_with("metrics.error.tolerance", "1pp"), "metrics.error.tolerance: must be a number"),
        (_with("metrics.error.statistic", "median"), "metrics.error.statistic: must be one of"),
        (_with("metrics.error.action", "panic"), "metrics.error.action: must be one of"),
        (_with("metrics.error.worse", "up"), "metrics.error.worse"),
        (_with("metrics.error.min_samples", 0), "metrics.error.min_samples"),
        (_with("metrics.error.components", []), "metrics.error.components"),
        (_with("metrics.error.tolerence", 0.1), "metrics.error.tolerence: unknown field"),
        (_with("metrics.error.q", 1.5), "metrics.error.q"),
        (_with("metrics.error.critical", "yes"), "metrics.error.critical"),
        ({"metrics": {"error": {"tolerance": 0.01}}}, "metrics.error.statistic: is required"),
        ({"metrics": {"error": {"statistic": "rate"}}}, "metrics.error.tolerance: is required"),
        ({"metrics": {"lat": {"statistic": "quantile", "tolerance": 0.1, "worse": "lower"}}},
         "metrics.lat.worse"),
        ({"metrics": {}}, "metrics: must name at least one metric"),
        ({**MINIMAL, "version": 2}, "version"),
        ({**MINIMAL, "bucket_seconds": -10}, "bucket_seconds"),
        ({**MINIMAL, "evidence_threshold": 0}, "evidence_threshold"),
        ({**MINIMAL, "composites": [{"metrics": ["error", "nope"]}]}, "composites[0].metrics"),
        ({**MINIMAL, "composites": [{"metrics": ["error", "error"], "at_least": 3}]},
         "composites[0].at_least"),
        ({**MINIMAL, "colour": "red"}, "colour: unknown field"),
        ([1, 2], "policy: must be a table"),
    ],
)
def test_policy_mistake_is_refused_naming_the_field(raw: object, field: str) -> None:
    """Every wrong setting is refused, and the message starts with the field's path."""
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        policy_from_dict(raw)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("p.yaml", "metrics: [unclosed", "not valid yaml"),
    ("p.toml", "metrics = ", "not valid toml"),
])
def test_unreadable_policy_file_is_refused_naming_the_file(tmp_path: Path, name: str, text: str,
                                                           message: str) -> None:
    """A file that does not parse is refused with its path and format."""
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_policy(tmp_path / name)


def test_missing_policy_file_is_refused(tmp_path: Path) -> None:
    """A path that does not exist is a ConfigError, not an OSError."""
    with pytest.raises(ConfigError, match="cannot be read"):
        load_policy(tmp_path / "absent.yaml")


NUMERIC_FIELDS = ["metrics.error.tolerance", "metrics.error.threshold", "metrics.error.q",
                  "evidence_threshold", "baseline_margin", "bucket_seconds", "blip_seconds",
                  "baseline_half_life_seconds", "stale_after_seconds",
                  "inconclusive_after_seconds", "max_episode_seconds",
                  "max_future_skew_seconds", "max_lateness_seconds"]


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
@pytest.mark.parametrize("field", NUMERIC_FIELDS)
def test_a_non_finite_number_is_refused_naming_the_field(tmp_path: Path, field: str,
                                                         value: str) -> None:
    """.nan or .inf would switch a rule off without a word: refused, with the field named."""
    text = yaml.safe_dump(_with(field, 1.0)).replace("1.0", value)
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ConfigError, match=rf"{field}: must be a finite number"):
        load_policy(tmp_path / "p.yaml")


def test_a_toml_nan_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text('[metrics.error]\nstatistic = "rate"\ntolerance = nan\n')
    with pytest.raises(ConfigError, match=r"metrics\.error\.tolerance: must be a finite number"):
        load_policy(tmp_path / "p.toml")


def test_the_event_time_bounds_are_in_the_policy() -> None:
    """Skew and lateness are policy settings, and the skew stays below the lateness."""
    policy = default_policy()
    assert policy.max_future_skew_seconds + policy.bucket_seconds <= policy.max_lateness_seconds
    with pytest.raises(ConfigError, match="max_future_skew_seconds"):
        policy_from_dict({**MINIMAL, "max_future_skew_seconds": 300,
                          "max_lateness_seconds": 300})


BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi",
                                                                  strict=True))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("bomb.yaml", BOMB.encode(), "expand to more than"),
     ("big.yaml", b"# padding\n" * 110_000, "larger than 1000000 bytes"),
     ("bytes.yaml", b"metrics:\n  error: {statistic: rate, tolerance: 0.01}\n# \xff\n",
      "not UTF-8"),
     ("bytes.toml", b'name = "\xff"\n', "not UTF-8"),
     ("deep.yaml", b"[" * 50_000, "nested too deeply|not valid yaml"),
     ("cycle.yaml", b"a: &a [*a]\n", "expand to more than")],
)
def test_a_hostile_policy_file_is_refused_at_once_naming_the_file(
        tmp_path: Path, name: str, content: bytes, message: str) -> None:
    """A YAML bomb, a huge file or undecodable bytes: a clear refusal in milliseconds."""
    import time

    (tmp_path / name).write_bytes(content)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=message) as caught:
        load_policy(tmp_path / name)
    assert name in str(caught.value)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("raw", [
    _with("metrics.error.action", "staged"),
    {**_with("metrics.error.cohort_action", "staged"), "max_cohorts": 4},
    {**MINIMAL, "approvals": {"approvers": ["alice", "bob"], "rules": {"error": ["carol"]},
                              "pinned_full_rollback": 1}},
    {"metrics": {"error": {"statistic": "rate", "tolerance": 0.01},
                 "complaint": {"statistic": "rate", "tolerance": 0.02, "action": "alert"}},
     "transient_evidence": 6.0, "transient_min_samples": 10,
     "composites": [{"name": "pair", "metrics": ["error", "complaint"], "at_least": 2,
                     "evidence": 0.5,
                     "action": "staged", "steps": [30, 5, 0], "recovery_seconds": 300}]},
])
def test_a_resolved_policy_reads_back_as_the_same_policy(raw: dict) -> None:
    """`rollguard policy check` prints every setting, staged steps, cohort actions and
    approvers included: reading that document back gives the policy it came from."""
    policy = policy_from_dict(raw)
    document = yaml.safe_load(yaml.safe_dump(policy_document(policy)))
    assert policy_from_dict(document, name=policy.name) == policy
