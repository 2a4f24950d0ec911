"""The policy: which metrics to watch, how much worse is too much, and what to do then."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

from rollguard.detectors.approvers import ApprovalRules, approval_rules
from rollguard.detectors.documents import read_document, yaml_document
from rollguard.detectors.errors import ConfigError
from rollguard.detectors.evaluations import STANDARD_METRICS, OtelMapping, otel_mapping
from rollguard.detectors.policy_fields import choice, components, flag, known_only, number
from rollguard.detectors.rollout_plan import RolloutPlan, rollout_plan

STATISTICS = ("rate", "share", "mean", "quantile")
SCHEMA_VERSION = 1


class RuleAction(StrEnum):
    """What a rule does when its metric's regression is sustained."""

    ROLLBACK = "rollback"
    ALERT = "alert"
    APPROVE = "approve"  # a rollback that waits for a person
    DRY_RUN = "dry-run"  # a rollback reported, never acted on
    STAGED = "staged"  # the candidate's share cut in steps, judged at each (see Staging)


ACTIONS = tuple(RuleAction)


@dataclass(frozen=True)
class Staging:
    """How a ``staged`` rule cuts the candidate: its share goes to each of ``steps`` (in
    percent, falling, the last 0: rolled back) in turn, after at least ``step_seconds`` at
    the step before while the regression goes on; a candidate whose evidence stays below
    the threshold for ``recovery_seconds`` gets its share back (it was the traffic)."""

    steps: tuple[float, ...] = (10.0, 0.0)
    step_seconds: float = 60.0
    recovery_seconds: float = 600.0


@dataclass(frozen=True)
class MetricRule:
    """How one metric is compared with the baseline.

    ``statistic``: ``rate`` (share of 1s), ``share`` (share of values >= ``threshold``),
    ``mean`` or ``quantile`` (``q``). ``tolerance`` is how much worse than the baseline is
    still acceptable, absolute or ``relative`` to the baseline value. ``components`` empty
    means all. A ``critical`` metric acts alone; others alert alone and act via composites.
    """

    name: str
    statistic: str
    worse: str = "higher"
    tolerance: float = 0.0
    relative: bool = False
    threshold: float = 0.5
    q: float = 0.95
    min_samples: int = 200
    action: RuleAction = RuleAction.ROLLBACK
    components: tuple[str, ...] = ()
    critical: bool = True
    staging: Staging = Staging()
    cohort_action: RuleAction = RuleAction.ALERT  # for a regression of one cohort only

    @property
    def sign(self) -> float:
        """+1 when higher values are worse, -1 when lower values are worse."""
        return 1.0 if self.worse == "higher" else -1.0


@dataclass(frozen=True)
class CompositeRule:
    """Act when at least ``at_least`` of ``metrics`` each reach ``evidence`` x the threshold."""

    name: str
    metrics: tuple[str, ...]
    at_least: int
    evidence: float = 0.5
    action: RuleAction = RuleAction.ROLLBACK
    components: tuple[str, ...] = ()
    staging: Staging = Staging()


@dataclass(frozen=True)
class Policy:
    """A whole policy; build it with :func:`load_policy`, :func:`default_policy` or
    :func:`policy_from_dict` so that every field is checked."""

    metrics: Mapping[str, MetricRule]
    composites: tuple[CompositeRule, ...] = ()
    bucket_seconds: float = 10.0
    evidence_threshold: float = 8.0
    blip_seconds: float = 120.0
    baseline_half_life_seconds: float = 300.0
    baseline_margin: float = 2.0
    stale_after_seconds: float = 300.0
    inconclusive_after_seconds: float = 1800.0
    max_episode_seconds: float = 1800.0
    max_future_skew_seconds: float = 60.0
    max_lateness_seconds: float = 300.0
    max_cohorts: int = 8  # cohorts judged apart per service ("other" pools the rest)
    # The standard a recovered excursion must meet to be reported as transient: this much
    # evidence (nats) over at least this many candidate samples (see detectors.assess).
    transient_evidence: float = 8.0
    transient_min_samples: int = 30
    # The stable release's own evidence against its history (nats) that marks a shock of
    # both releases: the candidate is then compared with the stable at the same moments
    # (see detectors.weather).
    weather_evidence: float = 2.0
    # Cutovers: this many services whose candidates move on one metric within
    # fleet_window_seconds of each other are a fleet-wide incident (detectors.fleet).
    fleet_min_services: int = 5
    fleet_window_seconds: float = 180.0
    fleet_wait_seconds: float = 30.0  # a cut-over candidate's rollback waits this long for it
    name: str = "custom"
    extra: Mapping[str, Any] = field(default_factory=dict)
    approvals: ApprovalRules = field(default_factory=ApprovalRules)
    # OpenTelemetry evaluation results and GenAI spans as metrics (detectors.evaluations)
    opentelemetry: OtelMapping = field(
        default_factory=lambda: otel_mapping(None, STANDARD_METRICS))
    rollout: RolloutPlan = field(default_factory=RolloutPlan)  # see detectors.rollout

    @property
    def bucket_decay(self) -> float:
        """How much a reference's weight fades per bucket (``baseline_half_life_seconds``).

        >>> round(default_policy().bucket_decay, 5)
        0.99233
        """
        return float(0.5 ** (self.bucket_seconds / self.baseline_half_life_seconds))


_STAGING_KEYS = {"steps", "step_seconds", "recovery_seconds"}
_METRIC_KEYS = {"statistic", "worse", "tolerance", "relative", "threshold", "q",
                "min_samples", "action", "components", "critical", "cohort_action",
                *_STAGING_KEYS}
COHORT_ACTIONS = (RuleAction.ALERT, RuleAction.ROLLBACK, RuleAction.STAGED)


def _staging(raw: Mapping[str, Any], where: str, *actions: RuleAction) -> Staging:
    if RuleAction.STAGED not in actions:
        given = sorted(_STAGING_KEYS & set(raw))
        if given:
            raise ConfigError(f"{where}{given[0]}: only with action: staged")
        return Staging()
    steps = raw.get("steps", [10, 0])
    if (not isinstance(steps, list) or not steps
            or not all(type(s) in (int, float) and 0 <= s < 100 for s in steps)
            or any(a <= b for a, b in pairwise(steps)) or steps[-1] != 0):
        raise ConfigError(f"{where}steps: must be falling percentages below 100 ending in 0, "
                          f"got {steps!r}")
    return Staging(tuple(float(s) for s in steps),
                   number(raw, "step_seconds", where, 60.0),
                   number(raw, "recovery_seconds", where, 600.0))


def _metric(name: str, raw: object) -> MetricRule:
    where = f"metrics.{name}."
    if not isinstance(raw, Mapping):
        raise ConfigError(f"metrics.{name}: must be a table of settings")
    known_only(raw, _METRIC_KEYS, where)
    if "statistic" not in raw:
        raise ConfigError(f"{where}statistic: is required")
    statistic = choice(raw, "statistic", where, "rate", STATISTICS)
    if "tolerance" not in raw:
        raise ConfigError(f"{where}tolerance: is required")
    worse = choice(raw, "worse", where, "higher", ("higher", "lower"))
    if statistic == "quantile" and worse != "higher":
        raise ConfigError(f"{where}worse: quantile metrics support only 'higher'")
    min_samples = raw.get("min_samples", 200)
    if type(min_samples) is not int or min_samples < 1:
        raise ConfigError(f"{where}min_samples: must be an integer >= 1, got {min_samples!r}")
    action = RuleAction(choice(raw, "action", where, "rollback", ACTIONS))
    cohort_action = RuleAction(choice(raw, "cohort_action", where, "alert", COHORT_ACTIONS))
    return MetricRule(
        name=name,
        statistic=statistic,
        worse=worse,
        tolerance=number(raw, "tolerance", where, 0.0),
        relative=flag(raw, "relative", where, statistic == "quantile"),
        threshold=number(raw, "threshold", where, 0.5, low=float("-inf")),
        q=number(raw, "q", where, 0.95, high=0.999),
        min_samples=min_samples,
        action=action,
        components=components(raw, where),
        critical=flag(raw, "critical", where, True),
        staging=_staging(raw, where, action, cohort_action),
        cohort_action=cohort_action,
    )


def _composite(index: int, raw: object, metrics: Mapping[str, MetricRule]) -> CompositeRule:
    where = f"composites[{index}]."
    if not isinstance(raw, Mapping):
        raise ConfigError(f"composites[{index}]: must be a table of settings")
    known_only(raw, {"name", "metrics", "at_least", "evidence", "action", "components",
                 *_STAGING_KEYS}, where)
    members = raw.get("metrics")
    if not isinstance(members, list) or len(members) < 2:
        raise ConfigError(f"{where}metrics: must list at least two metrics")
    for member in members:
        if member not in metrics:
            raise ConfigError(f"{where}metrics: {member!r} is not a metric of this policy")
    at_least = raw.get("at_least", 2)
    if type(at_least) is not int or not 1 <= at_least <= len(members):
        raise ConfigError(f"{where}at_least: must be an integer in 1..{len(members)}")
    action = RuleAction(choice(raw, "action", where, "rollback", ACTIONS))
    return CompositeRule(
        name=str(raw.get("name", f"composite-{index}")),
        metrics=tuple(members),
        at_least=at_least,
        evidence=number(raw, "evidence", where, 0.5, high=1.0),
        action=action,
        components=components(raw, where),
        staging=_staging(raw, where, action),
    )


_TOP_KEYS = {"version", "name", "metrics", "composites", "bucket_seconds", "evidence_threshold",
             "blip_seconds", "baseline_half_life_seconds", "baseline_margin",
             "stale_after_seconds", "inconclusive_after_seconds", "max_episode_seconds",
             "max_future_skew_seconds", "max_lateness_seconds", "approvals", "max_cohorts",
             "transient_evidence", "transient_min_samples", "weather_evidence",
             "fleet_min_services", "fleet_window_seconds", "fleet_wait_seconds",
             "opentelemetry", "rollout"}


def policy_from_dict(raw: object, *, name: str = "custom") -> Policy:
    """Check a decoded policy document and build a :class:`Policy`.

    >>> policy_from_dict({"metrics": {"latency_ms": {"statistic": "quantile", "tolerance": 0}}})
    Traceback (most recent call last):
    ...
    rollguard.detectors.errors.ConfigError: metrics.latency_ms.tolerance: must be > 0.0, got 0
    """
    if not isinstance(raw, Mapping):
        raise ConfigError("policy: must be a table with a 'metrics' section")
    known_only(raw, _TOP_KEYS, "")
    version = raw.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ConfigError(f"version: this rollguard reads policy version {SCHEMA_VERSION}, "
                          f"got {version!r}")
    section = raw.get("metrics")
    if not isinstance(section, Mapping) or not section:
        raise ConfigError("metrics: must name at least one metric")
    metrics = {str(key): _metric(str(key), value) for key, value in section.items()}
    composites_raw = raw.get("composites", [])
    if not isinstance(composites_raw, list):
        raise ConfigError("composites: must be a list")
    bucket = number(raw, "bucket_seconds", "", 10.0, high=300.0)
    blip = number(raw, "blip_seconds", "", 120.0, low=0.0, strict_low=False)
    max_episode = number(raw, "max_episode_seconds", "", 1800.0)
    if max_episode < blip + 6 * bucket:
        raise ConfigError("max_episode_seconds: must exceed blip_seconds by six buckets")
    skew = number(raw, "max_future_skew_seconds", "", 60.0)
    lateness = number(raw, "max_lateness_seconds", "", 300.0, low=bucket, high=86400.0)
    if skew + bucket > lateness:
        # After an event dated at the skew limit, events on time must still count.
        raise ConfigError("max_future_skew_seconds: must be below max_lateness_seconds by "
                          "a bucket at least")
    max_cohorts = raw.get("max_cohorts", 8)
    if type(max_cohorts) is not int or not 2 <= max_cohorts <= 64:
        raise ConfigError(f"max_cohorts: must be an integer in 2..64, got {max_cohorts!r}")
    transient_min_samples = raw.get("transient_min_samples", 30)
    if type(transient_min_samples) is not int or transient_min_samples < 1:
        raise ConfigError("transient_min_samples: must be an integer >= 1, got "
                          f"{transient_min_samples!r}")
    fleet_min = raw.get("fleet_min_services", 5)
    if type(fleet_min) is not int or fleet_min < 2:
        raise ConfigError(f"fleet_min_services: must be an integer >= 2, got {fleet_min!r}")
    composites = tuple(_composite(i, c, metrics) for i, c in enumerate(composites_raw))
    mapping = otel_mapping(raw.get("opentelemetry"), {
        name: (rule.statistic, rule.worse) for name, rule in metrics.items()},
        [c.metrics for c in composites])
    if mapping.evaluation_lateness_seconds < lateness:
        raise ConfigError("opentelemetry.evaluation_lateness_seconds: must be at least "
                          f"max_lateness_seconds ({lateness:g}), got "
                          f"{mapping.evaluation_lateness_seconds:g}")
    return Policy(
        metrics=metrics,
        composites=composites,
        bucket_seconds=bucket,
        evidence_threshold=number(raw, "evidence_threshold", "", 8.0),
        blip_seconds=blip,
        baseline_half_life_seconds=number(raw, "baseline_half_life_seconds", "", 300.0),
        baseline_margin=number(raw, "baseline_margin", "", 2.0, strict_low=False),
        stale_after_seconds=number(raw, "stale_after_seconds", "", 300.0),
        inconclusive_after_seconds=number(raw, "inconclusive_after_seconds", "", 1800.0),
        max_episode_seconds=max_episode,
        max_future_skew_seconds=skew,
        max_lateness_seconds=lateness,
        max_cohorts=max_cohorts,
        transient_evidence=number(raw, "transient_evidence", "", 8.0),
        transient_min_samples=transient_min_samples,
        weather_evidence=number(raw, "weather_evidence", "", 2.0),
        fleet_min_services=fleet_min,
        fleet_window_seconds=number(raw, "fleet_window_seconds", "", 180.0, low=bucket,
                                    strict_low=False),
        fleet_wait_seconds=number(raw, "fleet_wait_seconds", "", 30.0, strict_low=False,
                                  high=600.0),
        name=str(raw.get("name", name)),
        approvals=approval_rules(raw.get("approvals")),
        opentelemetry=mapping,
        rollout=rollout_plan(raw.get("rollout")),
    )


def load_policy(path: str | Path) -> Policy:
    """Read a policy from a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file, bounded as
    :mod:`detectors.documents` says."""
    source = Path(path)
    raw = read_document(source, "policy file")
    try:
        return policy_from_dict(raw, name=source.stem)
    except ConfigError as exc:
        raise ConfigError(f"policy file {source}: {exc}") from None


def default_policy() -> Policy:
    """The shipped policy covering the seven standard metrics.

    >>> sorted(default_policy().metrics)  # doctest: +NORMALIZE_WHITESPACE
    ['accuracy', 'complaint', 'cost_usd', 'error', 'hallucination', 'latency_ms', 'toxicity']
    """
    text = resources.files("rollguard.detectors").joinpath("default_policy.yaml").read_text("utf-8")
    return policy_from_dict(yaml_document(text, "default policy"), name="default")
