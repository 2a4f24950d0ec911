"""Replay recorded events through the decision core, in file order, one monitor per service."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from detectors.blocks import Block, block_events
from detectors.decision import Decision
from detectors.events import Event, validate_event
from detectors.monitor import ServiceMonitor
from detectors.policy import Policy
from rollguard.line_batches import LineBatcher
from streams.wire import read_message


@dataclass
class Summary:
    """What a replay saw: the stderr summary of ``rollguard replay``."""

    read: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    late: int = 0
    too_late: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    services: int = 0

    def lines(self) -> list[str]:
        """Readable lines, one fact each."""
        rejected = sum(self.rejected.values())
        out = [f"events read: {self.read}  valid: {self.read - rejected}  rejected: {rejected}"]
        out += [f"  rejected {reason}: {count}" for reason, count in self.rejected.most_common()]
        out.append(f"duplicates ignored: {self.duplicates}  out of order: {self.late}  "
                   f"too late (dropped): {self.too_late}  services: {self.services}")
        made = ", ".join(f"{k}: {v}" for k, v in sorted(self.decisions.items())) or "none"
        out.append(f"decisions: {sum(self.decisions.values())} ({made})")
        return out


class Replay:
    """Feed events to one :class:`ServiceMonitor` per service and collect decisions."""

    def __init__(self, policy: Policy, on_decision: Callable[[Decision], None] | None = None,
                 on_event: Callable[[Event], None] | None = None) -> None:
        self.policy = policy
        self.monitors: dict[str, ServiceMonitor] = {}
        self.summary = Summary()
        self.decisions: list[Decision] = []
        self._on_decision = on_decision
        self._on_event = on_event

    def feed_lines(self, lines: Iterable[bytes | str]) -> None:
        """Each line is what a Kafka message of the events topic holds: one event, or an
        array of events and blocks (docs/wire-format.md)."""
        rejected = self.summary.rejected
        read = 0
        if self._on_event is None:  # (a recorder sees every event: then all go one by one)
            lines = LineBatcher(self._monitor, self._emit, self.summary,
                                self.policy.bucket_seconds).others(lines)
        for line in lines:
            value = line.encode() if isinstance(line, str) else line
            for item, raw, error in read_message(value):
                if item is None:
                    assert error is not None
                    read += 1
                    rejected[error.reason] += 1
                elif isinstance(item, Event):
                    read += 1
                    self.feed(item)
                else:
                    read += len(item)
                    self.feed_block(item, raw)
        self.summary.read += read

    def feed_block(self, block: Block, raw: dict[str, Any]) -> None:
        """Count a valid block (``raw`` is what it was decoded from)."""
        monitor = self._monitor(block.service)
        if self._on_event is not None:
            for event in block_events(raw):
                self._on_event(validate_event(event))
        decisions = monitor.observe_block(block)
        if decisions:
            self._emit(decisions)

    def _monitor(self, service: str) -> ServiceMonitor:
        monitor = self.monitors.get(service)
        if monitor is None:
            monitor = self.monitors[service] = ServiceMonitor(service, self.policy)
        return monitor

    def feed(self, event: Event) -> None:
        monitor = self._monitor(event.service)
        if self._on_event is not None:
            self._on_event(event)
        decisions = monitor.observe(event)
        if decisions:
            self._emit(decisions)

    def finish(self) -> Summary:
        """Close every open bucket and total the counters."""
        summary = self.summary
        for monitor in self.monitors.values():
            self._emit(monitor.flush())
            summary.duplicates += monitor.counts["duplicates"]
            summary.late += monitor.counts["late"]
            summary.too_late += monitor.counts["too_late"]
        summary.services = len(self.monitors)
        return summary

    def _emit(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            self.decisions.append(decision)
            self.summary.decisions[f"{decision.action}/{decision.verdict}"] += 1
            if self._on_decision is not None:
                self._on_decision(decision)


def replay_events(events: Iterable[Event], policy: Policy) -> list[Decision]:
    """Decisions for already-valid events (what the benchmarks and tests use)."""
    replay = Replay(policy)
    for event in events:
        replay.feed(event)
    replay.finish()
    return replay.decisions
