"""The drill's synthetic regression: which metric, how much traffic, where in event time, and
how soon ``rollguard policy explain`` expects it rolled back. Pure: the policy, the clock and
the previous drill's end are passed in.

The drill compresses time: its events are dated in the recent past and sent at once, so a
regression that takes minutes of event time to judge is judged in about a second. The stable
release serves alone for :data:`WARMUP_BUCKETS` buckets, then the candidate takes ``percent``
of the traffic, its metric worse by ``shift`` tolerances, for as long as policy explain
expects a rollback to take, and a quarter more. A drill service's event time only moves
forward (the worker counts events further behind it than the policy's lateness bound as too
late), so a drill begins after the last one's events; when that is in the future, its later
events wait for the clock (:attr:`Batch.ready_at`).

>>> from rollguard.detectors.policy import default_policy
>>> plan = make_plan(default_policy(), "rollguard-drill", 7, now=1_790_000_000.0,
...                  previous_until=0.0, shape=Shape(runs=2))
>>> plan.rule.name, plan.candidate, plan.canary_at - plan.start, plan.until <= 1_790_000_000.0
('hallucination', 'drill-07', 60.0, True)
>>> plan.expected_s
160.0
>>> sum(len(b.events) for b in batches(plan)) == round((plan.until - plan.start) * 20)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rollguard.actions.releases import STANDARD_COMPONENTS
from rollguard.analysis.explain_policy import BASES, drawer, run, watched
from rollguard.base.errors import ConfigError
from rollguard.detectors.policy import MetricRule, Policy, RuleAction

STABLE = "drill-stable"
NAMES = 32  # candidates rotate through drill-00 .. drill-31: a name is fresh for 31 drills
WARMUP_BUCKETS = 6  # the stable alone before the candidate arrives (a minute by default)
# Candidate traffic is sent a quarter beyond policy explain's bound (three buckets at least),
# so that a decision that comes late is seen late rather than never.
EXTRA = 0.25
EXTRA_BUCKETS = 3
WINDOW_S = 1800.0  # how long policy explain's runs watch the candidate


@dataclass(frozen=True)
class Shape:
    """The drill's traffic. ``metric`` None: the policy's first metric whose sustained
    regression rolls back the whole release and whose healthy level is known (``base``
    gives it for metrics beyond the standard seven)."""

    metric: str | None = None
    base: float | None = None
    rate: float = 20.0  # events per second of event time, both releases together
    percent: float = 50.0  # the candidate's share
    shift: float = 10.0  # how much worse the candidate is, in tolerances
    runs: int = 8  # policy explain's runs behind the decision's bound


@dataclass(frozen=True)
class Plan:
    """One drill: its releases, its metric, and where its events lie in event time."""

    service: str
    number: int
    candidate: str
    rule: MetricRule
    base: float
    shape: Shape
    start: float  # event time of the first bucket
    canary_at: float  # event time the candidate's traffic begins
    until: float  # event time the last bucket ends
    expected_s: float  # policy explain: the rollback comes this long after canary_at
    bucket_s: float


@dataclass(frozen=True)
class Batch:
    """The events of one bucket, to be sent once the clock reaches ``ready_at``."""

    ready_at: float
    canary: bool  # the candidate serves in it (sent after the canary is promoted)
    events: list[dict[str, Any]]


def components(release: str) -> dict[str, str]:
    """What a drill release holds: each standard component, named after the release.

    >>> components("drill-07")["model"]
    'drill-07'
    """
    return dict.fromkeys(STANDARD_COMPONENTS, release)


def candidate_name(number: int) -> str:
    """The candidate release of drill ``number``.

    >>> candidate_name(7), candidate_name(39)
    ('drill-07', 'drill-07')
    """
    return f"drill-{number % NAMES:02d}"


def drill_rule(policy: Policy, shape: Shape) -> tuple[MetricRule, float]:
    """The metric the drill makes worse, and its healthy level."""
    rollbacks = [r for r in policy.metrics.values()
                 if r.action == RuleAction.ROLLBACK and r.critical
                 and set(r.components) <= set(STANDARD_COMPONENTS)]
    if shape.metric is not None:
        rule = policy.metrics.get(shape.metric)
        if rule is None or rule not in rollbacks:
            raise ConfigError(f"--metric {shape.metric}: not a metric of policy "
                              f"{policy.name!r} whose action is rollback")
    else:
        known = [r for r in rollbacks if shape.base is not None or r.name in BASES]
        full = [r for r in known if not r.components]
        if not known:
            raise ConfigError(f"policy {policy.name!r} has no metric whose action is rollback "
                              "and whose healthy level is known: name one with --metric and "
                              "--base")
        rule = (full or known)[0]
    base = shape.base if shape.base is not None else BASES.get(rule.name)
    if base is None:
        raise ConfigError(f"--metric {rule.name}: give its healthy level with --base")
    return rule, base


def expected_decision_s(policy: Policy, rule: MetricRule, base: float, shape: Shape) -> float:
    """What policy explain expects: the 90th percentile of its runs' delays from the
    candidate's arrival to the rollback at the drill's traffic, up to a whole bucket."""
    warmup = WARMUP_BUCKETS * policy.bucket_seconds
    delays = sorted(run(watched(policy), {rule.name: drawer(rule, base)}, shape.rate,
                        shape.percent / 100, shape.shift, seed, window=WINDOW_S,
                        wanted={rule.name}, warmup=warmup)[rule.name] or math.inf
                    for seed in range(shape.runs))
    p90 = delays[min(len(delays) - 1, math.ceil(0.9 * len(delays)) - 1)] * 60
    if math.isinf(p90):
        raise ConfigError(f"policy explain expects no rollback of {rule.name} within "
                          f"{WINDOW_S / 60:.0f} min at {shape.rate:g} events/s, {shape.shift:g}x "
                          "its tolerance: raise --rate or --shift")
    width = policy.bucket_seconds
    return math.ceil(p90 / width - 1e-9) * width


def first_bucket(now: float, previous_until: float, span: float, width: float) -> float:
    """Where the drill's first bucket begins: ``span`` before ``now`` (all in the past),
    or, when the last drill's events end later than that, the bucket after them.

    >>> first_bucket(1000.0, 0.0, 300.0, 10.0), first_bucket(1000.0, 905.0, 300.0, 10.0)
    (700.0, 910.0)
    """
    latest = math.floor((now - span) / width) * width
    after = (math.floor(previous_until / width) + 1) * width
    return max(latest, after)


def make_plan(policy: Policy, service: str, number: int, now: float, previous_until: float,
              shape: Shape) -> Plan:
    rule, base = drill_rule(policy, shape)
    expected = expected_decision_s(policy, rule, base, shape)
    width = policy.bucket_seconds
    warmup = WARMUP_BUCKETS * width
    extra = max(EXTRA_BUCKETS, math.ceil(EXTRA * expected / width)) * width
    span = warmup + expected + extra
    start = first_bucket(now, previous_until, span, width)
    return Plan(service, number, candidate_name(number), rule, base, shape, start,
                start + warmup, start + span, expected, width)


def batches(plan: Plan) -> list[Batch]:
    """Every bucket's events, in time order (deterministic: seeded by the drill's number)."""
    rng = np.random.default_rng(plan.number)
    draw = drawer(plan.rule, plan.base)
    width, shape = plan.bucket_s, plan.shape
    out = []
    for k in range(round((plan.until - plan.start) / width)):
        t0 = plan.start + k * width
        canary = t0 >= plan.canary_at
        share = shape.percent / 100 if canary else 0.0
        counts = {STABLE: round(shape.rate * (1 - share) * width),
                  plan.candidate: round(shape.rate * share * width)}
        events: list[dict[str, Any]] = []
        for release, n in counts.items():
            values = draw(rng, n, shape.shift if release == plan.candidate else 0.0)
            events += [{"event_id": f"{plan.service}-{plan.number}-{release}-{k}-{i}",
                        "ts": t0 + width * (i + 0.5) / n, "service": plan.service,
                        "release": release, "metrics": {plan.rule.name: value}}
                       for i, value in enumerate(values)]
        events.sort(key=lambda e: e["ts"])
        out.append(Batch(t0 + width, canary, events))
    return out
