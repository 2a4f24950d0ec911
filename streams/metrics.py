"""The worker's Prometheus metrics, in a registry of its own (a process may hold two apps).

Nothing here costs anything per event. What the partition loop counts anyway (events,
rejections by reason), its checkpoints and its live monitors are read when Prometheus
scrapes (:class:`LoopCollector`); decisions and command outcomes are counted by the agents
as they carry them out (:class:`WorkerMetrics`), which happens once per decision or command.

- ``rollguard_events_total{outcome=counted|rejected}``: items of the events topic;
  ``rollguard_events_rejected_total{reason}``: the rejected ones by reason code;
- ``rollguard_partition_lag_messages{partition}``: the partition's end offset minus the
  next offset the worker will handle; ``rollguard_checkpoint_age_seconds{partition}``;
- ``rollguard_event_time_lag_seconds{service}``: wall clock minus the newest event time;
- ``rollguard_metric_value{service,release,role,metric}`` (role ``baseline`` or
  ``candidate``), ``rollguard_metric_tolerance{service,metric}`` and
  ``rollguard_metric_limit{service,metric}`` (the edge of the band, baseline ± tolerance);
- ``rollguard_decisions_total{service,verdict,action}``, ``rollguard_commands_total{outcome}``
  and ``rollguard_decision_to_flip_seconds{approval}`` (issued to applied);
- a guarded rollout under way (docs/rollout.md): ``rollguard_rollout_percent{service,
  release}`` the share of the step the worker judges, ``rollguard_rollout_step{service,
  release}`` (1-based), ``rollguard_rollout_state{service,release,state}`` 1 for its state
  (``running``, ``held``: pinned or traffic too thin, ``awaiting``, ``paused``, ``aborted``,
  ``stable``);
- ``rollguard_offset_gaps_accepted_total{topic}``: gaps of the topics the worker reads that
  the gap guard stopped seeking back for and took as absent (:mod:`rollguard.streams.gaps`);
- the OTLP topics (:class:`OtlpCollector`): ``rollguard_otlp_messages_total``,
  ``rollguard_otlp_records_total``, ``rollguard_otlp_events_forwarded_total``,
  ``rollguard_otlp_rejected_total{reason}``, ``rollguard_otlp_skipped_total{reason}``,
  ``rollguard_otlp_unknown_evaluations_total{name}`` (at most 100 names, the rest as
  ``(other)``), ``rollguard_otlp_held_records`` and ``rollguard_otlp_waiting_messages``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rollguard.detectors.decision import Decision
from rollguard.detectors.events import REASONS
from rollguard.detectors.levels import band, levels
from rollguard.streams.gaps import GapGuard
from rollguard.streams.otlp.loop import OtlpLoop
from rollguard.streams.otlp.records import REASONS as OTLP_REASONS
from rollguard.streams.otlp.records import SKIPPED as OTLP_SKIPPED
from rollguard.streams.partition import PartitionLoop

# Every reason an item of the events topic can be rejected for: the wire's and the monitor
# set's codes besides rollguard.detectors.events.REASONS (a bounded label, listed at zero from
# start).
REJECT_REASONS = (*REASONS, "empty_message", "empty_batch", "key_mismatch", "processing_error")
COMMAND_OUTCOMES = ("applied", "already_applied", "conflict", "refused", "awaiting_approval")
# From a rule's command applied in milliseconds to one that waited an hour for a person.
FLIP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                900.0, 3600.0)

Ends = Callable[[], Mapping[int, int | None]]
"""The end offset of each events-topic partition the worker holds (None: not known yet)."""


def decision_action(decision: Decision) -> str:
    """What a decision does, as the policy names it: ``rollback``, ``approve`` (a rollback
    that waits for a person), ``dry-run`` or ``alert``."""
    if decision.action == "rollback" and decision.requires_approval:
        return "approve"
    if decision.action == "rollback" and decision.dry_run:
        return "dry-run"
    return str(decision.action)


def command_outcome(record: Mapping[str, Any]) -> str:
    """The outcome of one commands-topic message, from its audit record."""
    kind = record.get("type")
    if kind == "outcome":
        return str(record.get("status", "refused"))
    # an approval recorded while the command waits for another approver: it still waits
    waiting = kind in ("approval-needed", "approval-recorded")
    return "awaiting_approval" if waiting else "refused"


class WorkerMetrics:
    """The registry the worker serves, and what its agents record into it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.decisions = Counter("rollguard_decisions", "Decisions about candidate releases",
                                 ["service", "verdict", "action"], registry=self.registry)
        self.commands = Counter("rollguard_commands", "Commands-topic messages by outcome",
                                ["outcome"], registry=self.registry)
        self.flip = Histogram("rollguard_decision_to_flip_seconds",
                              "From a command's issue (the decision) to its applied outcome",
                              ["approval"], buckets=FLIP_BUCKETS, registry=self.registry)
        for outcome in COMMAND_OUTCOMES:
            self.commands.labels(outcome)
        for approval in ("none", "approved"):
            self.flip.labels(approval)

    def watch(self, loop: PartitionLoop[Any], ends: Ends) -> None:
        """Read ``loop`` (and the partitions' end offsets) at each scrape."""
        self.registry.register(LoopCollector(loop, ends))

    def watch_otlp(self, loop: OtlpLoop[Any]) -> None:
        """Read the OTLP loop's counts at each scrape."""
        self.registry.register(OtlpCollector(loop))

    def watch_gaps(self, *guards: GapGuard) -> None:
        """Serve the gaps each of ``guards`` took as absent, by topic."""
        self.registry.register(GapCollector(guards))

    def watch_pointers(self, epochs: Callable[[], Mapping[str, int]]) -> None:
        """Serve the epoch of each service's pointer the monitor holds (``epochs``)."""
        self.registry.register(PointerCollector(epochs))

    def on_decisions(self, decisions: Iterable[Decision]) -> None:
        for d in decisions:
            self.decisions.labels(d.service, str(d.verdict), decision_action(d)).inc()

    def on_actuated(self, audit: Iterable[bytes]) -> None:
        """Count the outcome of a commands-topic message from its audit record(s); time the
        flip of an applied command from when it was issued."""
        for value in audit:
            record = orjson.loads(value)
            outcome = command_outcome(record)
            self.commands.labels(outcome).inc()
            issued = record.get("issued_at")
            if outcome == "applied" and isinstance(issued, float | int):
                approval = "approved" if record.get("approved_by") else "none"
                self.flip.labels(approval).observe(max(record["at"] - issued, 0.0))

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return render(self.snapshot())

    def snapshot(self) -> list[Metric]:
        """Every metric's samples now: take it on the worker's event loop."""
        return list(self.registry.collect())


def render(families: list[Metric]) -> bytes:
    """A snapshot in the text format; the costly part of a scrape (about 10 µs a sample),
    done off the event loop by the endpoint."""
    return generate_latest(_Taken(families))


class _Taken(Collector):
    """A snapshot, collected again."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


class PointerCollector(Collector):
    """``rollguard_pointer_epoch``: the pointer epoch the monitor judges each service by."""

    def __init__(self, epochs: Callable[[], Mapping[str, int]]) -> None:
        self.epochs = epochs

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("rollguard_pointer_epoch",
                                   "Epoch of the service's version pointer the monitor holds",
                                   labels=["service"])
        for service, epoch in sorted(self.epochs().items()):
            family.add_metric([service], epoch)
        yield family


class OtlpCollector(Collector):
    """What the OTLP loop read, forwarded, rejected, skipped, and holds now."""

    def __init__(self, loop: OtlpLoop[Any]) -> None:
        self.loop = loop

    def collect(self) -> Iterator[Metric]:
        loop, counts = self.loop, self.loop.counts
        for name, what, key in (("messages", "Messages of the OTLP topics read", "messages"),
                                ("records", "Records of the OTLP topics read", "records"),
                                ("events_forwarded", "Events of OTLP records forwarded to "
                                 "their service's partition", "events")):
            yield CounterMetricFamily(f"rollguard_otlp_{name}", what, value=counts[key])
        for name, what, found, listed in (
                ("rejected", "OTLP records dead-lettered, by reason", loop.rejections,
                 OTLP_REASONS),
                ("skipped", "OTLP records counted, not judged, by reason", loop.skipped,
                 OTLP_SKIPPED)):
            family = CounterMetricFamily(f"rollguard_otlp_{name}", what, labels=["reason"])
            for reason in sorted({*listed, *found}):
                family.add_metric([reason], found[reason])
            yield family
        unknown = CounterMetricFamily("rollguard_otlp_unknown_evaluations",
                                      "Evaluation results whose name the policy does not map",
                                      labels=["name"])
        for name, count in sorted(loop.unknown.items()):
            unknown.add_metric([name], count)
        yield unknown
        yield GaugeMetricFamily("rollguard_otlp_held_records", "Evaluation results waiting "
                                "for their output", value=loop.join.held)
        yield GaugeMetricFamily("rollguard_otlp_waiting_messages", "OTLP messages read and "
                                "not yet acknowledged", value=loop.waiting)


class GapCollector(Collector):
    """``rollguard_offset_gaps_accepted_total{topic}``: the gaps the gap guards took as
    absent (a warning names each one's offsets)."""

    def __init__(self, guards: Iterable[GapGuard]) -> None:
        self.guards = tuple(guards)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("rollguard_offset_gaps_accepted",
                                     "Gaps of missing offsets the worker stopped seeking back "
                                     "for and took as absent", labels=["topic"])
        accepted: dict[str, int] = {}
        for guard in self.guards:
            for topic, count in guard.accepted.items():
                accepted[topic] = accepted.get(topic, 0) + count
        for topic, count in sorted(accepted.items()):
            family.add_metric([topic], count)
        yield family


class LoopCollector(Collector):
    """Reads a :class:`PartitionLoop` when scraped; ``clock`` is the wall clock (event time),
    ``monotonic`` the clock the loop is given as ``now``."""

    def __init__(self, loop: PartitionLoop[Any], ends: Ends,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.loop = loop
        self.ends = ends
        self.clock = clock
        self.monotonic = monotonic

    def collect(self) -> Iterator[Metric]:
        yield from self._events()
        yield from self._partitions()
        yield from self._services()
        yield from self._rollouts()

    def _rollouts(self) -> Iterator[Metric]:
        labels = ["service", "release"]
        percent = GaugeMetricFamily("rollguard_rollout_percent",
                                    "The share of the traffic at the rollout's step", labels=labels)
        step = GaugeMetricFamily("rollguard_rollout_step", "The rollout's step, from 1",
                                 labels=labels)
        state = GaugeMetricFamily("rollguard_rollout_state", "1 for the rollout's state",
                                  labels=[*labels, "state"])
        for monitor in self.loop.monitors:
            run, cand = monitor.rollout, monitor.candidate
            if run is None:
                continue
            key = [monitor.service, cand.release if cand is not None else ""]
            percent.add_metric(key, run.ramp.percent)
            step.add_metric(key, run.ramp.step + 1)
            state.add_metric([*key, run.state], 1.0)
        return iter((percent, step, state))

    def _events(self) -> Iterator[Metric]:
        counts = self.loop.counts
        events = CounterMetricFamily("rollguard_events", "Items of the events topic",
                                     labels=["outcome"])
        events.add_metric(["counted"], counts["events"])
        events.add_metric(["rejected"], counts["rejected"])
        rejected = CounterMetricFamily("rollguard_events_rejected",
                                       "Rejected items of the events topic by reason",
                                       labels=["reason"])
        by_reason = self.loop.rejections
        for reason in sorted({*REJECT_REASONS, *by_reason}):
            rejected.add_metric([reason], by_reason[reason])
        return iter((events, rejected))

    def _partitions(self) -> Iterator[Metric]:
        marks, now = self.loop.marks, self.monotonic()
        lag = GaugeMetricFamily("rollguard_partition_lag_messages",
                                "Messages of the partition not handled yet",
                                labels=["partition"])
        for partition, end in sorted(self.ends().items()):
            applied = marks.applied(partition)
            if end is not None and applied is not None:
                lag.add_metric([str(partition)], max(end - applied - 1, 0))
        age = GaugeMetricFamily("rollguard_checkpoint_age_seconds",
                                "Seconds since the partition's state was last checkpointed",
                                labels=["partition"])
        for partition, since in sorted(marks.since().items()):
            age.add_metric([str(partition)], max(now - since, 0.0))
        return iter((lag, age))

    def _services(self) -> Iterator[Metric]:
        now = self.clock()
        service_labels = ["service"]
        event_lag = GaugeMetricFamily("rollguard_event_time_lag_seconds",
                                      "Wall clock minus the newest event time of the service",
                                      labels=service_labels)
        value = GaugeMetricFamily("rollguard_metric_value",
                                  "A metric of a release: the stable one (baseline) or the "
                                  "candidate, over the decayed reference",
                                  labels=["service", "release", "role", "metric"])
        tolerance = GaugeMetricFamily("rollguard_metric_tolerance",
                                      "How much worse than the baseline is still acceptable",
                                      labels=["service", "metric"])
        limit = GaugeMetricFamily("rollguard_metric_limit",
                                  "The baseline worsened by the tolerance: the band's edge",
                                  labels=["service", "metric"])
        for monitor in self.loop.monitors:
            service = monitor.service
            newest = max(lane.latest_ts for lane in monitor.lanes())  # either clock's
            if newest > 0:
                event_lag.add_metric([service], now - newest)
            for level in levels(monitor):
                value.add_metric([service, level.release, level.role, level.metric],
                                 level.value)
                if level.role == "baseline":
                    tol, edge = band(monitor.policy.metrics[level.metric], level.value)
                    tolerance.add_metric([service, level.metric], tol)
                    limit.add_metric([service, level.metric], edge)
        return iter((event_lag, value, tolerance, limit))
