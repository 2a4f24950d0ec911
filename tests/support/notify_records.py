"""Records as the worker writes them to the alerts and audit topics, for notifier tests."""

from __future__ import annotations

from typing import Any

from rollguard.notify.episodes import Batcher, EpisodeBook, Message
from rollguard.notify.notices import read_record

WEB = "http://status.example"  # the status page the messages link to


def alert(at: float, service: str = "chat", release: str = "v2", verdict: str = "transient",
          metric: str = "error", kind: str = "alert") -> dict[str, Any]:
    return {"type": kind, "at": at, "ts": at, "service": service, "release": release,
            "action": "alert", "verdict": verdict, "to": "v1", "components": [],
            "reason": f"{metric} of {release} is 0.09 against 0.02 on v1 (tolerance +2 pp).",
            "evidence": {"metric": metric}, "requires_approval": False, "dry_run": False}


def rollback(at: float, command_id: str = "c1", service: str = "chat", release: str = "v2",
             approval: bool = False) -> dict[str, Any]:
    return {**alert(at, service, release, "sustained", "hallucination", kind="decision"),
            "action": "rollback", "command_id": command_id, "requires_approval": approval}


def approval_needed(at: float, command_id: str = "c1", service: str = "chat") -> dict[str, Any]:
    return {"type": "approval-needed", "at": at, "service": service, "command_id": command_id,
            "reason": "hallucination worse",
            "how": f"rollguard approve {service} {command_id} --by NAME"}


def outcome(at: float, command_id: str = "c1", service: str = "chat", status: str = "applied",
            op: str = "rollback", issued_by: str = "rule:hallucination",
            **more: Any) -> dict[str, Any]:
    return {"type": "outcome", "at": at, "service": service, "command_id": command_id,
            "op": op, "status": status, "code": "", "epoch_before": 3, "epoch_after": 4,
            "message": "", "issued_by": issued_by, "approved_by": None,
            "reason": "hallucination worse", "recorded": True, **more}


def staged(at: float, action: str = "stage", command_id: str = "c1", percent: float = 10.0,
           restore_percent: float = 50.0) -> dict[str, Any]:
    """A staged rollback's cut (``stage``) or restore decision, as the audit topic has it."""
    steps = {"rule": "hallucination", "round": 0, "step": 1, "percent": percent}
    if action == "stage":
        steps["steps"], verdict = [percent, 0.0], "sustained"
        reason = (f"hallucination of v2 is 0.09 against 0.02 on v1. Staged rollback: v2 cut to "
                  f"{percent:g}% of the traffic (step 1 of 2) and judged again there.")
    else:
        steps["restore_percent"], verdict = restore_percent, "transient"
        reason = (f"v2 recovered at {percent:g}% of the traffic: the evidence of hallucination "
                  f"stayed below the threshold for 60 s, so the regression came with the "
                  f"traffic, not the release; v2 gets {restore_percent:g}% back.")
    return {**alert(at, verdict=verdict, metric="hallucination", kind="decision"),
            "action": action, "command_id": command_id, "reason": reason,
            "evidence": {"metric": "hallucination", "staged": steps}}


def messages(*records: dict[str, Any]) -> list[Message]:
    """The messages the records make, batched and due."""
    book, batcher = EpisodeBook(), Batcher(batch_s=1.0)
    for record in records:
        update = book.add(read_record(record))
        if update is not None:
            batcher.add(update, now=0.0)
    return batcher.due(1.0)
