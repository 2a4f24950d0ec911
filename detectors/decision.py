"""A decision about a candidate release: what to do, why, and the evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    """What the evidence says about a candidate's metric. A member is its string value, so
    JSON and comparisons with plain strings see ``"sustained"``.

    >>> Verdict.SUSTAINED == "sustained", f"{Verdict.TRANSIENT}"
    (True, 'transient')
    """

    OK = "ok"  # never emitted: a decision is only made when something is worth saying
    TRANSIENT = "transient"  # worse for a while, then recovered: an alert
    SUSTAINED = "sustained"  # worse even leaving out the worst stretch: the rule's action
    INCONCLUSIVE = "inconclusive"  # too little data, or a metric stopped arriving: an alert
    FLEET = "fleet"  # many services moved together: one fleet-wide alert, no rollback
    HELD = "held"  # a rollback held as part of a fleet-wide incident already alerted


class DecisionAction(StrEnum):
    """What a decision asks for; a policy's ``approve`` and ``dry-run`` are flags of a
    rollback (:attr:`Decision.requires_approval`, :attr:`Decision.dry_run`)."""

    ROLLBACK = "rollback"
    ALERT = "alert"
    STAGE = "stage"  # cut the candidate's share to ``evidence["staged"]["percent"]``
    RESTORE = "restore"  # give a staged candidate its share back: it recovered


@dataclass
class Decision:
    """One decision, printed by ``rollguard replay`` and acted on by the worker.

    ``action`` is a :class:`DecisionAction`. A rollback with ``requires_approval`` waits for a
    person (policy action ``approve``); one with ``dry_run`` is reported, never acted on.

    >>> d = Decision(ts=1.0, service="chat", release="r2", action=DecisionAction.ALERT,
    ...              verdict=Verdict.TRANSIENT, to="r1", components=[], reason="A blip.",
    ...              evidence={"metric": "error"})
    >>> list(d.to_dict())[:5]
    ['ts', 'service', 'release', 'action', 'verdict']
    >>> import orjson; orjson.dumps({k: d.to_dict()[k] for k in ("action", "verdict")})
    b'{"action":"alert","verdict":"transient"}'
    """

    ts: float
    service: str
    release: str
    action: DecisionAction
    verdict: Verdict
    to: str | None
    components: list[str]
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    requires_approval: bool = False
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON object replay prints, keys in a fixed order."""
        return {
            "ts": self.ts,
            "service": self.service,
            "release": self.release,
            "action": self.action,
            "verdict": self.verdict,
            "to": self.to,
            "components": list(self.components),
            "reason": self.reason,
            "evidence": self.evidence,
            "requires_approval": self.requires_approval,
            "dry_run": self.dry_run,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Decision:
        """The decision :meth:`to_dict` gave (a waiting one comes back from the state)."""
        fields = dict(raw)
        fields["action"] = DecisionAction(fields["action"])
        fields["verdict"] = Verdict(fields["verdict"])
        return cls(**fields)
