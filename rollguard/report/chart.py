"""An incident's per-metric chart (:mod:`rollguard.analysis.plot`, as ``replay --plot`` draws it):
the service's events read back from the events topic around the incident, while the topic
still holds them, with the audit topic's decisions marked."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from rollguard.base.errors import InvalidEvent
from rollguard.detectors.blocks import Block, block_events
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.events import Event, validate_event
from rollguard.detectors.policy import Policy
from rollguard.report.story import Incident
from rollguard.streams.connect import consumer, partition_counts
from rollguard.streams.wire import read_message

BEFORE_S = 600.0  # of the baseline before the deploy
AFTER_S = 300.0  # after the flip: the candidate's share going away


def events_of(value: bytes | None, service: str) -> Iterator[Event]:
    """The valid events of ``service`` in one message of the events topic (others skipped:
    the worker reported them as dead letters already)."""
    for item, raw, _ in read_message(value):
        if isinstance(item, Event):
            if item.service == service:
                yield item
        elif isinstance(item, Block):
            for one in block_events(raw):
                try:
                    event = validate_event(one)
                except InvalidEvent:
                    continue
                if event.service == service:
                    yield event


def decisions_of(records: Sequence[Mapping[str, Any]]) -> list[Decision]:
    """The audit topic's decisions, as the plot marks them.

    >>> [d.action for d in decisions_of([{"type": "decision", "ts": 1.0, "service": "a",
    ...   "release": "v2", "action": "alert", "verdict": "transient"}, {"type": "outcome"}])]
    [<DecisionAction.ALERT: 'alert'>]
    """
    return [Decision(ts=float(r["ts"]), service=str(r["service"]), release=str(r["release"]),
                     action=DecisionAction(r["action"]), verdict=Verdict(r["verdict"]),
                     to=r.get("to"), components=list(r.get("components") or []),
                     reason=str(r.get("reason", "")), evidence=dict(r.get("evidence") or {}))
            for r in records if r.get("type") == "decision" and "ts" in r]


def window(incident: Incident) -> tuple[float, float]:
    """Wall-clock times whose events the chart shows."""
    times = [step.at for step in incident.timeline]
    return min(times) - BEFORE_S, max(times) + AFTER_S


async def read_events(topic: str, service: str, start: float, end: float,
                      bootstrap: str | None = None) -> list[Event]:
    """The events of ``service`` produced between ``start`` and ``end`` (wall clock)."""
    count = (await partition_counts([topic], bootstrap)).get(topic)
    if not count:
        return []
    partitions = [TopicPartition(topic, p) for p in range(count)]
    key, found = service.encode(), list[Event]()
    async with consumer(bootstrap=bootstrap, group_id=None, enable_auto_commit=False,
                        auto_offset_reset="earliest") as source:
        source.assign(partitions)
        ends = await source.end_offsets(partitions)
        starts = await source.offsets_for_times({tp: int(start * 1000) for tp in partitions})
        left = set()
        for tp in partitions:
            if starts[tp] is not None and starts[tp].offset < ends[tp]:
                source.seek(tp, starts[tp].offset)
                left.add(tp)
        while left:
            for tp, messages in (await source.getmany(*left, timeout_ms=500)).items():
                for m in messages:
                    if m.timestamp > end * 1000:
                        left.discard(tp)
                        break
                    if m.key == key:
                        found.extend(events_of(m.value, service))
            left = {tp for tp in left if await source.position(tp) < ends[tp]}
    return found


def draw_chart(events: list[Event], records: Sequence[Mapping[str, Any]], policy: Policy,
               service: str, path: Path) -> Path | None:
    """The chart of ``events`` into ``path``; None when there is nothing to draw."""
    from rollguard.analysis.plot import SeriesRecorder, draw, require_matplotlib

    if not events:
        return None
    require_matplotlib()
    path.parent.mkdir(parents=True, exist_ok=True)
    recorder = SeriesRecorder(policy)
    for event in events:
        recorder.add(event)
    return draw(recorder, decisions_of(records), path, service)
