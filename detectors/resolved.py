"""A policy as the plain document it stands for, every default filled in.

>>> from rollguard.detectors.policy import default_policy, policy_from_dict
>>> doc = policy_document(default_policy())
>>> doc["metrics"]["latency_ms"]["q"], "q" in doc["metrics"]["error"]
(0.95, False)
>>> policy_from_dict(doc, name="default") == default_policy()
True
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from rollguard.detectors.approvers import ApprovalRules
from rollguard.detectors.evaluations import mapping_document
from rollguard.detectors.policy import (
    SCHEMA_VERSION,
    CompositeRule,
    MetricRule,
    Policy,
    RuleAction,
    Staging,
)
from rollguard.detectors.rollout_plan import plan_document

_SKIP = {"metrics", "composites", "name", "extra", "approvals", "opentelemetry", "rollout"}


def policy_document(policy: Policy) -> dict[str, Any]:
    """The settings of ``policy`` in the layout of a policy file (``rollguard policy check``)."""
    doc: dict[str, Any] = {"version": SCHEMA_VERSION, "name": policy.name}
    for spec in fields(policy):
        if spec.name not in _SKIP:
            doc[spec.name] = getattr(policy, spec.name)
    doc["metrics"] = {name: _metric(rule) for name, rule in policy.metrics.items()}
    doc["composites"] = [_composite(c) for c in policy.composites]
    doc["approvals"] = _approvals(policy.approvals)
    doc["opentelemetry"] = mapping_document(policy.opentelemetry)
    doc["rollout"] = plan_document(policy.rollout)
    return doc


def _approvals(rules: ApprovalRules) -> dict[str, Any]:
    return {"approvers": list(rules.approvers),
            "rules": {rule: list(names) for rule, names in rules.rules.items()},
            "pinned_full_rollback": rules.pinned_full_rollback}


def _staging(staging: Staging, *actions: RuleAction) -> dict[str, Any]:
    # Only a staged rule (or cohort action) may carry these fields (detectors.policy).
    if RuleAction.STAGED not in actions:
        return {}
    return {"steps": list(staging.steps), "step_seconds": staging.step_seconds,
            "recovery_seconds": staging.recovery_seconds}


def _metric(rule: MetricRule) -> dict[str, Any]:
    out: dict[str, Any] = {"statistic": rule.statistic, "worse": rule.worse,
                           "tolerance": rule.tolerance, "relative": rule.relative}
    if rule.statistic == "share":
        out["threshold"] = rule.threshold
    if rule.statistic == "quantile":
        out["q"] = rule.q
    out.update(min_samples=rule.min_samples, action=str(rule.action),
               components=list(rule.components) or "all", critical=rule.critical,
               cohort_action=str(rule.cohort_action))
    out.update(_staging(rule.staging, rule.action, rule.cohort_action))
    return out


def _composite(rule: CompositeRule) -> dict[str, Any]:
    return {"name": rule.name, "metrics": list(rule.metrics), "at_least": rule.at_least,
            "evidence": rule.evidence, "action": str(rule.action),
            "components": list(rule.components) or "all",
            **_staging(rule.staging, rule.action)}
