"""Who may approve a rollback that waits for a person, and how many must (pure).

The policy's ``approvals`` section::

    approvals:
      approvers: [alice, bob, carol]   # may approve any waiting rollback (empty: any operator)
      rules:                           # a rule's own approvers, instead of the list above
        latency_ms: [carol]
      pinned_full_rollback: 2          # approvers a full rollback of a pinned service needs

A rollback of a pinned service that waits for approval is carried out despite the pin once
approved (the approvers override it, as ``--force`` does); a full one needs
``pinned_full_rollback`` different people.

>>> rules = approval_rules({"approvers": ["alice", "bob"]})
>>> judge(rules, "quality", "alice", (), pinned=True, full=True)
Waiting(approvers=('alice',), needed=2)
>>> judge(rules, "quality", "alice", ("alice",), pinned=True, full=True)
NotAllowed(code='same_approver', why='alice has already approved this rollback')
>>> judge(rules, "quality", "bob", ("alice",), pinned=True, full=True)
Approved(approvers=('alice', 'bob'))
>>> judge(rules, "quality", "mallory", (), pinned=False, full=True).code
'not_an_approver'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rollguard.detectors.errors import ConfigError

MAX_APPROVERS_NEEDED = 5


@dataclass(frozen=True)
class ApprovalRules:
    """``approvers`` empty: any registered operator may approve."""

    approvers: tuple[str, ...] = ()
    rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pinned_full_rollback: int = 2

    def allowed(self, rule: str) -> tuple[str, ...]:
        """Who may approve what ``rule`` asks for (empty: anyone registered)."""
        return self.rules.get(rule, self.approvers)


@dataclass(frozen=True)
class NotAllowed:
    code: str
    why: str


@dataclass(frozen=True)
class Waiting:
    """Recorded; the rollback waits for ``needed - len(approvers)`` more people."""

    approvers: tuple[str, ...]
    needed: int


@dataclass(frozen=True)
class Approved:
    approvers: tuple[str, ...]


Verdict = NotAllowed | Waiting | Approved


def needed(rules: ApprovalRules, pinned: bool, full: bool) -> int:
    """How many different people must approve."""
    return rules.pinned_full_rollback if pinned and full else 1


def judge(rules: ApprovalRules, rule: str, approver: str, earlier: tuple[str, ...],
          pinned: bool, full: bool) -> Verdict:
    """What ``approver``'s approval of a rollback issued by ``rule`` does, after ``earlier``
    approvals of it; ``pinned``: the service is pinned; ``full``: the whole release goes."""
    allowed = rules.allowed(rule)
    if allowed and approver not in allowed:
        return NotAllowed("not_an_approver", f"{approver} may not approve rollbacks of rule "
                                             f"{rule!r} (allowed: {', '.join(allowed)})")
    if approver in earlier:
        return NotAllowed("same_approver", f"{approver} has already approved this rollback")
    approvers = (*earlier, approver)
    count = needed(rules, pinned, full)
    if len(approvers) < count:
        return Waiting(approvers, count)
    return Approved(approvers)


def _names(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: must be a list of operator names, got {value!r}")
    return tuple(v.strip() for v in value)


def approval_rules(raw: object) -> ApprovalRules:
    """Check a policy's ``approvals`` section (None: the defaults).

    >>> approval_rules({"pinned_full_rollback": 0})
    Traceback (most recent call last):
    ...
    rollguard.detectors.errors.ConfigError: approvals.pinned_full_rollback: must be an integer in 1..5, got 0
    """
    if raw is None:
        return ApprovalRules()
    if not isinstance(raw, Mapping):
        raise ConfigError("approvals: must be a table of settings")
    unknown = sorted(set(raw) - {"approvers", "rules", "pinned_full_rollback"})
    if unknown:
        raise ConfigError(f"approvals.{unknown[0]}: unknown field")
    approvers = _names(raw.get("approvers", []), "approvals.approvers")
    per_rule = raw.get("rules", {})
    if not isinstance(per_rule, Mapping):
        raise ConfigError("approvals.rules: must map rule names to lists of operator names")
    rules = {str(k): _names(v, f"approvals.rules.{k}") for k, v in per_rule.items()}
    count = raw.get("pinned_full_rollback", 2)
    if type(count) is not int or not 1 <= count <= MAX_APPROVERS_NEEDED:
        raise ConfigError(f"approvals.pinned_full_rollback: must be an integer in "
                          f"1..{MAX_APPROVERS_NEEDED}, got {count!r}")
    for rule, names in {"approvers": approvers, **rules}.items():
        if names and len(names) < count:
            # a full rollback of a pinned service could never gather enough approvers
            raise ConfigError(f"approvals.{'' if rule == 'approvers' else 'rules.'}{rule}: "
                              f"names {len(names)}, fewer than pinned_full_rollback ({count})")
    return ApprovalRules(approvers, rules, count)
