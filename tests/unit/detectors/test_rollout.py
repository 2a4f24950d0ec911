"""The guarded rollout's step logic (detectors/rollout.py), its plan and its evidence."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.errors import ConfigError, RolloutRefused
from rollguard.detectors.noninferiority import StepReading, noninferiority
from rollguard.detectors.policy import default_policy, policy_from_dict
from rollguard.detectors.resolved import policy_document
from rollguard.detectors.rollout import Ramp, Regression, regressions_of
from rollguard.detectors.rollout_plan import RolloutPlan, rollout_plan

H = 8.0  # policy_from_dict's default evidence_threshold
METRICS = {"error": {"statistic": "rate", "tolerance": 0.01},
           "accuracy": {"statistic": "mean", "worse": "lower", "tolerance": 0.03}}
PLAN = {"steps": [10, 50, 100], "min_seconds": 60, "min_samples": 100, "limit_seconds": 600,
        "bake_seconds": 120}


def ramp_of(**plan: Any) -> Ramp:
    policy = policy_from_dict({"metrics": METRICS, "rollout": {**PLAN, **plan}})
    return Ramp.start(policy, now=0.0)


def good(samples: int = 100, llr: float = 3.0, per_sample: float = 0.03) -> dict[str, StepReading]:
    return {name: StepReading(samples, llr, per_sample) for name in METRICS}


def feed(ramp: Ramp, times: list[float], readings: dict[str, StepReading],
         regressions: tuple[Regression, ...] = ()) -> list[str]:
    return [str(ramp.observe(t, readings, regressions).action) for t in times]


@pytest.mark.parametrize(("times", "readings", "expected"), [
    # enough evidence (3 buckets x 3 nats > 8) and samples, but only after min_seconds
    ([10, 20, 30, 60], good(), ["wait", "wait", "wait", "advance"]),
    # evidence at once, too few samples (100 needed, 40 per bucket): the third bucket
    ([60, 70, 80], good(samples=40, llr=5.0), ["wait", "wait", "advance"]),
    # one metric never has data: never advances, and holds once it cannot be decided
    ([60, 70, 600], {"error": StepReading(100, 9.0, 0.03)}, ["hold", "hold", "hold"]),
    # a baseline too thin to judge against counts no evidence at all
    ([60, 70], {n: StepReading(500, None) for n in METRICS}, ["hold", "hold"]),
])
def test_a_step_passes_only_on_evidence(times: list[float], readings: dict[str, StepReading],
                                        expected: list[str]) -> None:
    """A step passes after min_seconds, with min_samples and evidence for every metric."""
    assert feed(ramp_of(), times, readings) == expected


def test_thin_traffic_holds_and_says_how_much_it_needs() -> None:
    """Traffic that cannot bring the evidence within the limit holds with the count needed."""
    ramp = ramp_of()
    trickle = good(samples=2, llr=0.02, per_sample=0.01)
    verdicts = [ramp.observe(float(t), trickle) for t in range(10, 70, 10)]
    assert [str(v.action) for v in verdicts] == ["wait"] * 5 + ["hold"]
    hold = verdicts[-1]
    # 12 samples and 0.12 nats so far: (8 - 0.12) / 0.01 = 788 more samples
    assert hold.needed_events == 788 and "error needs about 788 more samples" in hold.reason
    assert "it gets 0.2/s" in hold.reason and hold.announce
    assert not ramp.observe(70.0, trickle).announce  # said once, then repeated quietly


@pytest.mark.parametrize(("on_limit", "expected"), [("hold", "hold"), ("abort", "abort")])
def test_the_limit_holds_or_aborts_as_the_plan_says(on_limit: str, expected: str) -> None:
    """A step not decided within limit_seconds holds or ends the rollout, per the plan."""
    ramp = ramp_of(on_limit=on_limit)
    weak = good(llr=0.0)
    assert feed(ramp, [100.0], weak) == ["wait"]
    verdict = ramp.observe(600.0, weak)
    assert verdict.action == expected and "not decided within 600 s" in verdict.reason
    assert ramp.ended == (on_limit == "abort")


def test_a_held_step_still_passes_when_the_evidence_comes() -> None:
    """After the limit with on_limit hold, evidence that arrives later still passes it."""
    ramp = ramp_of()
    assert feed(ramp, [600.0, 610.0], good(llr=0.0)) == ["hold", "hold"]
    assert feed(ramp, [620.0], good(llr=9.0)) == ["advance"]


@pytest.mark.parametrize(("on_regression", "action", "expected", "ended"), [
    ("rollback", "rollback", "abort", True),
    ("rollback", "staged", "abort", True),
    ("rollback", "approve", "abort", True),
    ("pause", "rollback", "pause", False),
    ("rollback", "alert", "wait", False),  # an alert rolls nothing back: the ramp goes on
])
def test_a_regression_aborts_or_pauses(on_regression: str, action: str, expected: str,
                                       ended: bool) -> None:
    """A sustained regression whose rule rolls back ends or pauses the rollout."""
    ramp = ramp_of(on_regression=on_regression)
    verdict = ramp.observe(10.0, good(), (Regression("error", action, "worse"),))
    assert (verdict.action, ramp.ended) == (expected, ended)
    if expected == "pause":  # nothing goes forward until a person says so
        assert feed(ramp, [60.0, 70.0], good(llr=9.0)) == ["pause", "pause"]
        assert ramp.resume(80.0, "alice").action == "wait"
        assert feed(ramp, [90.0, 140.0], good(llr=9.0)) == ["wait", "advance"]


def test_an_approval_gate_waits_for_a_person() -> None:
    """A step before an approval gate, once passed, waits; the approval advances it."""
    ramp = ramp_of(approval_before=[50])
    verdict = ramp.observe(60.0, good(llr=9.0))
    assert (verdict.action, verdict.to_percent) == ("await_approval", 50.0)
    assert feed(ramp, [70.0], good()) == ["await_approval"]
    advanced = ramp.approve(80.0, 50, "carol")
    assert (advanced.action, advanced.percent, advanced.step) == ("advance", 50.0, 2)
    with pytest.raises(RolloutRefused, match="not a step ahead that needs approval"):
        ramp.approve(90.0, 100, "carol")


def test_an_early_approval_lets_the_step_advance_at_once() -> None:
    """Approving a gate ahead of time means no wait when the rollout reaches it."""
    ramp = ramp_of(approval_before=[50])
    assert ramp.approve(5.0, 50, "carol").action == "wait"
    assert feed(ramp, [60.0], good(llr=9.0)) == ["advance"]


def test_bake_at_100_then_stable_and_a_regression_in_the_bake_aborts() -> None:
    """At 100 % the release is stable after bake_seconds; a regression there ends it."""
    ramp = ramp_of()
    assert feed(ramp, [60.0, 120.0], good(llr=9.0)) == ["advance", "advance"]
    assert ramp.percent == 100.0
    assert feed(ramp, [200.0, 240.0, 250.0], {}) == ["wait", "stable", "stable"]
    baking = ramp_of()
    feed(baking, [60.0, 120.0], good(llr=9.0))
    regression = (Regression("accuracy", "rollback"),)
    assert feed(baking, [130.0], {}, regression) == ["abort"]


def test_a_persons_commands() -> None:
    """Pause stops the ramp, resume judges the step afresh, finish goes to 100 %, abort ends."""
    ramp = ramp_of()
    assert ramp.pause(10.0, "bob").action == "pause"
    with pytest.raises(RolloutRefused, match="not paused"):
        ramp_of().resume(10.0, "bob")
    ramp.resume(20.0, "bob")
    assert feed(ramp, [70.0], good(llr=9.0)) == ["wait"]  # 50 s since the resume
    assert ramp.finish(75.0, "bob").to_percent == 100.0
    assert ramp.abort(80.0, "bob").action == "abort"
    with pytest.raises(RolloutRefused, match="has ended"):
        ramp.pause(90.0, "bob")


@pytest.mark.parametrize(("section", "message"), [
    ({"steps": [50, 10, 100]}, "rollout.steps: must be rising"),
    ({"steps": []}, "rollout.steps: must be rising"),
    ({"min_samples": 0}, "rollout.min_samples: must be an integer >= 1"),
    ({"min_seconds": -1}, "rollout.min_seconds: must be >= 0.0"),
    ({"limit_seconds": 60, "min_seconds": 60}, "rollout.limit_seconds: must be above"),
    ({"on_limit": "wait"}, "rollout.on_limit: must be one of hold, abort"),
    ({"on_regression": "stop"}, "rollout.on_regression: must be one of rollback, pause"),
    ({"approval_before": [1]}, "rollout.approval_before: 1 is not a step after the first"),
    ({"approval_before": [30]}, "rollout.approval_before: 30 is not a step"),
    ({"bake_seconds": math.nan}, "rollout.bake_seconds: must be a finite number"),
    ({"stepz": [1, 100]}, "rollout.stepz: unknown field"),
    ([1, 100], "rollout: must be a table"),
])
def test_a_wrong_plan_is_refused_naming_the_field(section: object, message: str) -> None:
    """Each mistake in the rollout section names its field."""
    with pytest.raises(ConfigError, match=message):
        policy_from_dict({"metrics": METRICS, "rollout": section})


def test_the_policy_section_defaults_and_round_trips() -> None:
    """Without a rollout section the plan is the issue's default; the document reads back."""
    assert policy_from_dict({"metrics": METRICS}).rollout == RolloutPlan()
    assert RolloutPlan().steps == (1.0, 5.0, 25.0, 50.0, 100.0)
    policy = default_policy()
    assert policy.rollout == RolloutPlan()
    document = orjson.loads(orjson.dumps(policy_document(policy)))
    assert policy_from_dict(document, name="default") == policy
    assert rollout_plan(None) == RolloutPlan()


def test_a_policy_with_nothing_that_rolls_back_cannot_start_a_rollout() -> None:
    """No metric could roll back: no step could ever be judged, so none starts."""
    policy = policy_from_dict({"metrics": {"error": {"statistic": "rate", "tolerance": 0.01,
                                                     "action": "alert"}}})
    with pytest.raises(ConfigError, match="no metric whose rule could roll back"):
        Ramp.start(policy, 0.0)


def _decision(action: DecisionAction, verdict: Verdict = Verdict.SUSTAINED,
              **flags: bool) -> Decision:
    return Decision(1.0, "chat", "r2", action, verdict, "r1", [], "why", {"metric": "error"},
                    **flags)


@pytest.mark.parametrize(("decision", "expected"), [
    (_decision(DecisionAction.ROLLBACK), ["rollback"]),
    (_decision(DecisionAction.ROLLBACK, requires_approval=True), ["approve"]),
    (_decision(DecisionAction.ROLLBACK, dry_run=True), ["alert"]),
    (_decision(DecisionAction.STAGE), ["staged"]),
    (_decision(DecisionAction.ALERT), ["alert"]),
    (_decision(DecisionAction.ALERT, Verdict.TRANSIENT), []),
    (_decision(DecisionAction.ALERT, Verdict.INCONCLUSIVE), []),
])
def test_regressions_of_decisions(decision: Decision, expected: list[str]) -> None:
    """Sustained decisions become regressions with what their rule does."""
    assert [r.action for r in regressions_of([decision])] == expected


REFS = {"rate": [20_000.0, 100.0, 100.0], "mean": [20_000.0, 17_600.0, 15_616.0]}


@pytest.mark.parametrize(("name", "statistic", "ref", "equal", "worse"), [
    # error rate 0.5 % +1 pp: 1,000 samples with 5 errors (equal) or 20 (1.5x the tolerance)
    ("error", "rate", REFS["rate"], [1000, 5.0, 5.0], [1000, 20.0, 20.0]),
    # accuracy 0.88 (sd 0.08) -3 pp: 200 samples at 0.88 or at 0.835
    ("accuracy", "mean", REFS["mean"], [200, 176.0, 155.52], [200, 167.0, 139.6]),
])
def test_noninferiority_points_the_right_way(name: str, statistic: str, ref: list[float],
                                             equal: list[float], worse: list[float]) -> None:
    """An equal candidate gathers evidence of non-inferiority; a worse one loses it."""
    rule = default_policy().metrics[name]
    ni = noninferiority(rule, ref, 1.0, 5.0)
    assert ni is not None and ni.per_sample > 0
    assert ni.hyp.score(equal)[0] > 0 > ni.hyp.score(worse)[0]


def test_noninferiority_of_a_quantile_is_about_the_share_above_the_cut() -> None:
    """p95 +25 %: H0 puts 5 % above 1.25 x the baseline's p95, H1 the baseline's share."""
    from rollguard.detectors.histogram import bin_of

    rule = default_policy().metrics["latency_ms"]
    values = [600.0 * math.exp(0.5 * z / 10) for z in range(-40, 41)]  # a spread of latencies
    hist: dict[int, float] = {}
    for v in values * 50:
        hist[bin_of(v)] = hist.get(bin_of(v), 0.0) + 1.0
    ni = noninferiority(rule, [float(len(values) * 50), hist, 1.0], 1.0, 5.0)
    assert ni is not None
    cut = ni.hyp.cut_bin
    above = sum(c for b, c in hist.items() if b > cut) / (len(values) * 50)
    assert 0.0 <= above < 0.05 and math.isclose(math.exp(ni.hyp.b), (1 - above) / 0.95,
                                                rel_tol=1e-9)


def test_a_step_moved_from_outside_is_judged_afresh_and_a_wait_for_approval_ends() -> None:
    """at_step: the share moved by a person's approval (or a move that did not apply):
    the ramp stands there, its evidence reset, no longer awaiting."""
    from rollguard.detectors.policy import default_policy
    from rollguard.detectors.rollout import AWAITING, RUNNING, Ramp, RampAction
    from rollguard.detectors.rollout_plan import RolloutPlan

    ramp = Ramp.start(default_policy(), 0.0, RolloutPlan(steps=(5.0, 50.0, 100.0)))
    ramp.status = AWAITING
    verdict = ramp.at_step(1, 900.0, "approved by cy")
    assert (verdict.action, verdict.percent, ramp.status, ramp.since, ramp.tallies) == (
        RampAction.WAIT, 50.0, RUNNING, 900.0, {})
    assert "approved by cy: step 2 (50%) judged afresh" in verdict.reason
