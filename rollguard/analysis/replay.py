"""Replay recorded events through the decision core, in file order, as the worker would.

A line is what a Kafka message holds: of the events topic (one event, or an array of events
and blocks of one service: docs/wire-format.md), or of the OTLP topics in ``otlp_json`` (an
``ExportLogsServiceRequest`` or ``ExportTraceServiceRequest``, one a line, as the
Collector's ``file`` exporter writes them and ``kcat`` prints the topics): these are read as
the worker reads them (:class:`~rollguard.streams.otlp.translate.OtlpReader`, its evaluator
join included) and each service's events judged as the worker judges what it forwards.
Evaluations still waiting for their output at the end are ``release_unknown``."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rollguard.analysis.line_batches import LineBatcher
from rollguard.analysis.replay_rollout import RolloutReplay, RolloutSpec
from rollguard.detectors.blocks import block_events
from rollguard.detectors.decision import Decision
from rollguard.detectors.events import Event, validate_event
from rollguard.detectors.monitors import Fed, Item, MonitorSet
from rollguard.detectors.policy import Policy
from rollguard.streams.otlp.join import Join
from rollguard.streams.otlp.translate import OtlpReader, Result
from rollguard.streams.wire import read_message

_OTLP = re.compile(rb'\s*\{\s*"resource(Logs|Spans)"')
_SIGNALS = {b"Logs": "logs", b"Spans": "traces"}


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
    otlp_records: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # OTLP records not judged, by why
    ramp: Counter[str] | None = None  # a guarded rollout's verdicts by action (--rollout)

    def lines(self) -> list[str]:
        """Readable lines, one fact each."""
        rejected = sum(self.rejected.values())
        out = [f"events read: {self.read}  valid: {self.read - rejected}  rejected: {rejected}"]
        if self.otlp_records:
            skipped = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()))
            out.append(f"OTLP records read: {self.otlp_records}  not judged: "
                       f"{sum(self.skipped.values())}" + (f" ({skipped})" if skipped else ""))
        # Most first, ties by name: the order must not depend on which reason came first
        # (batched and one-by-one replays meet them in different orders).
        by_count = sorted(self.rejected.items(), key=lambda item: (-item[1], item[0]))
        out += [f"  rejected {reason}: {count}" for reason, count in by_count]
        out.append(f"duplicates ignored: {self.duplicates}  out of order: {self.late}  "
                   f"too late (not counted): {self.too_late}  services: {self.services}")
        made = ", ".join(f"{k}: {v}" for k, v in sorted(self.decisions.items())) or "none"
        out.append(f"decisions: {sum(self.decisions.values())} ({made})")
        if self.ramp is not None:
            told = ", ".join(f"{k}: {v}" for k, v in sorted(self.ramp.items())) or "none"
            out.append(f"ramp verdicts: {sum(self.ramp.values())} ({told})")
        return out


class Replay:
    """Feed recorded messages to one :class:`MonitorSet`, as the worker does, and collect
    decisions."""

    def __init__(self, policy: Policy, on_decision: Callable[[Decision], None] | None = None,
                 on_event: Callable[[Event], None] | None = None,
                 rollout: RolloutSpec | None = None,
                 on_ramp: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.policy = policy
        self.monitors = MonitorSet(policy)
        self.summary = Summary()
        self.decisions: list[Decision] = []
        self._on_decision = on_decision
        self._on_event = on_event
        # No clock in a file (time stands at 0): the join holds evaluations until the end,
        # within its bounds on what it holds.
        self._otlp = OtlpReader(policy.opentelemetry, Join())
        # A guarded rollout: its ramp judged message by message as the worker judges it.
        self.rollout = None
        if rollout is not None:
            self.summary.ramp = Counter()
            self.rollout = RolloutReplay(rollout, self._ramp_verdict)
        self._on_ramp = on_ramp

    def feed_lines(self, lines: Iterable[bytes | str]) -> None:
        """Each line is what a Kafka message of the events topic holds: one event, or an
        array of events and blocks (docs/wire-format.md), all of one service."""
        summary = self.summary
        if self._on_event is None and self.rollout is None:
            # (a recorder sees every event, a rollout is steered per message: one by one)
            lines = LineBatcher(self.monitors.monitor_for, self._emit, summary,
                                self.policy.bucket_seconds).others(lines)
        for line in lines:
            raw = line.encode() if isinstance(line, str) else line
            otlp = _OTLP.match(raw)
            if otlp is not None:
                self._feed_otlp(self._otlp.read(raw, "otlp_json", _SIGNALS[otlp[1]], 0.0))
                continue
            fed = self._feed(list(read_message(raw)))
            summary.read += fed.events + len(fed.rejected)
            for rejected in fed.rejected:
                summary.rejected[rejected.reason] += 1

    def _feed_otlp(self, result: Result) -> None:
        """A read OTLP request: each service's events as one forwarded message, its bad
        records counted as rejected by reason."""
        summary = self.summary
        summary.otlp_records += result.records
        summary.skipped.update(result.skipped)
        for _, _, error in result.rejected:
            summary.rejected[error.reason if error else "invalid"] += 1
        for items in result.items.values():
            fed = self._feed(items)
            summary.read += fed.events + len(fed.rejected)
            for rejected in fed.rejected:
                summary.rejected[rejected.reason] += 1

    def feed(self, event: Event) -> None:
        """Count one valid event (a message of its own)."""
        self.summary.read += 1
        self._feed([(event, None, None)])

    def _feed(self, items: list[Item]) -> Fed:
        if self._on_event is not None:
            for item, raw, _ in items:
                if isinstance(item, Event):
                    self._on_event(item)
                elif item is not None:  # a block: the recorder plots its events one by one
                    for event in block_events(raw):
                        self._on_event(validate_event(event))
        if self.rollout is not None:
            fed = self.rollout.feed(self.monitors, items)
        else:
            fed = self.monitors.feed(items)
        if fed.decisions:
            self._emit(fed.decisions)
        return fed

    def finish(self) -> Summary:
        """Close every open bucket and total the counters."""
        summary = self.summary
        if self._otlp.join.held:
            self._feed_otlp(self._otlp.expire(math.inf))
        self._emit(self.monitors.flush())
        for monitor in self.monitors:
            for lane in monitor.lanes():
                summary.duplicates += lane.counts["duplicates"]
                summary.late += lane.counts["late"]
                summary.too_late += lane.counts["too_late"]
        summary.services = len(self.monitors)
        return summary

    def _ramp_verdict(self, record: dict[str, Any]) -> None:
        if self.summary.ramp is not None:
            self.summary.ramp[str(record["action"])] += 1
        if self._on_ramp is not None:
            self._on_ramp(record)

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
