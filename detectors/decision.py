"""A decision about a candidate release: what to do, why, and the evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERDICTS = ("ok", "transient", "sustained", "inconclusive")
"""``ok`` is never emitted: a decision is only made when something is worth saying."""


@dataclass
class Decision:
    """One decision, printed by ``rollguard replay`` and acted on by the worker.

    ``action`` is ``rollback`` or ``alert``. A rollback with ``requires_approval`` waits for a
    person (policy action ``approve``); one with ``dry_run`` is reported, never acted on.

    >>> d = Decision(ts=1.0, service="chat", release="r2", action="alert", verdict="transient",
    ...              to="r1", components=[], reason="A blip.", evidence={"metric": "error"})
    >>> list(d.to_dict())[:5]
    ['ts', 'service', 'release', 'action', 'verdict']
    """

    ts: float
    service: str
    release: str
    action: str
    verdict: str
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
