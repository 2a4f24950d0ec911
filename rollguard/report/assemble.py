"""A report of one service from what Redis and the audit topic hold now (the I/O around the
pure :mod:`rollguard.report.story`)."""

from __future__ import annotations

import os

from detectors.policy import default_policy, load_policy
from rollguard.errors import UnknownService
from rollguard.report.render import Report
from rollguard.report.sources import gather
from rollguard.report.story import incidents, parse_since
from streams.settings import WorkerSettings


async def assemble(service: str, since: str | None, now: float) -> Report:
    """The last incident of ``service``, or every one from ``since`` on."""
    start = parse_since(since, now) if since is not None else None
    settings = WorkerSettings.from_env(dev=True)  # reads only: no command is signed
    found = await gather(service, settings.topic_audit)
    if found.pointer is None and not found.history:
        raise UnknownService(f"{service} has no version pointer and no history")
    stories = incidents(found.history, found.records, start)
    path = os.environ.get("ROLLGUARD_POLICY")
    return Report(service=service, generated_at=now, pointer=found.pointer,
                  policy=load_policy(path) if path else default_policy(),
                  policy_source=path or "the shipped default",
                  audit_topic=settings.topic_audit,
                  incidents=stories if start is not None else stories[-1:])
