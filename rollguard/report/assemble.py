"""A report of one service from what Redis and the audit topic hold now (the I/O around the
pure :mod:`rollguard.report.story`)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from rollguard.base.errors import UnknownService
from rollguard.detectors.policy import default_policy, load_policy
from rollguard.report.chart import draw_chart, read_events, window
from rollguard.report.render import Report
from rollguard.report.sources import Evidence, gather
from rollguard.report.story import incidents
from rollguard.streams.settings import WorkerSettings


async def assemble(service: str, start: float | None, now: float,
                   chart: Path | None = None) -> Report:
    """The last incident of ``service``, or every one from ``start`` on; with ``chart``, each
    incident's per-metric chart (``chart``, or ``NAME-2.png``... for several) where the
    events topic still holds its events."""
    settings = WorkerSettings.from_env(dev=True)  # reads only: no command is signed
    found = await gather(service, settings.topic_audit)
    if found.pointer is None and not found.history:
        raise UnknownService(f"{service} has no version pointer and no history")
    stories = incidents(found.history, found.records, start)
    path = os.environ.get("ROLLGUARD_POLICY")
    report = Report(service=service, generated_at=now, pointer=found.pointer,
                    policy=load_policy(path) if path else default_policy(),
                    policy_source=path or "the shipped default",
                    audit_topic=settings.topic_audit,
                    incidents=stories if start is not None else stories[-1:])
    if chart is None:
        return report
    return dataclasses.replace(report, charts=await _charts(report, found, settings, chart))


async def _charts(report: Report, found: Evidence, settings: WorkerSettings,
                  chart: Path) -> dict[str, str]:
    drawn = {}
    for number, incident in enumerate(report.incidents, 1):
        target = chart if number == 1 else chart.with_stem(f"{chart.stem}-{number}")
        events = await read_events(settings.topic_events, report.service, *window(incident))
        if draw_chart(events, found.records, report.policy, report.service, target):
            drawn[incident.command_id] = str(target)
    return drawn
