"""The live monitors of many services, and how one message's items reach them.

The worker (one per partition it holds) and ``rollguard replay`` both feed messages here, so
a recording replays exactly as the worker would have judged it. A message carries one
service's events: its key names the service, or, unkeyed, its first valid item does; an
item of another service is rejected (``key_mismatch``). Items are what
``streams.wire.read_message`` yields, read already: ``(event_or_block, raw, None)`` or
``(None, raw, error)`` with ``error.reason`` a short code.

>>> from rollguard.detectors.policy import default_policy
>>> from rollguard.detectors.events import Event
>>> monitors = MonitorSet(default_policy())
>>> e = Event("id-1", 1_700_000_000.0, "chat", "r1", "", {"error": 0.0})
>>> fed = monitors.feed([(e, {}, None), (None, "x", _Err("not_json"))])
>>> fed.service, fed.events, [(r.reason, r.raw) for r in fed.rejected]
('chat', 1, [('not_json', 'x')])
>>> monitors.get("chat").stable
'r1'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from rollguard.detectors.blocks import Block, block_as_events
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.events import Event
from rollguard.detectors.fleet import FleetView
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.names import is_drill
from rollguard.detectors.policy import Policy


class HasReason(Protocol):
    """What a rejection carries: a short, countable reason code and a detail."""

    reason: str
    detail: str


@dataclass(frozen=True)
class _Err:
    reason: str
    detail: str = ""


Item = tuple[Event | Block | None, Any, HasReason | None]
# stable, candidate, the candidate's episode and its share of the traffic (percent)
Roles = tuple[str | None, str | None, int | None, float | None]


@dataclass(frozen=True)
class Rejected:
    """One thing of a message that was set aside: its reason code, detail, and raw value."""

    reason: str
    detail: str
    raw: Any


@dataclass
class Fed:
    """What one message did: the service whose monitor it reached (None: none), the valid
    events it counted, what was rejected, and the decisions of buckets it closed."""

    service: str | None = None
    events: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


LATE_STREAK_ALERT = 100  # this many events in a row too late to count: the service is blind


class MonitorSet:
    """One :class:`ServiceMonitor` per service, created on first sight or restored.

    ``restore(service)`` returns the stored state bytes (:meth:`ServiceMonitor.to_bytes`) of
    a service this set holds no live monitor of, or None for a fresh one.

    Event time is bounded both ways: an event dated more than the policy's
    ``max_future_skew_seconds`` after the wall-clock ``now`` given to :meth:`feed` is
    rejected (``ts_in_future``), so that it cannot move a service's time ahead and make
    every later event too late; without ``now`` (a replay: no "now" to compare recorded
    events with) that check is off. An event more than ``max_lateness_seconds`` behind its
    service's newest bucket is rejected (``too_late``); :data:`LATE_STREAK_ALERT` of them in
    a row give an inconclusive alert, since the service is then not judged at all.
    """

    def __init__(self, policy: Policy,
                 restore: Callable[[str], bytes | None] | None = None) -> None:
        self.policy = policy
        self._restore = restore
        self._monitors: dict[str, ServiceMonitor] = {}
        self._late_streak: dict[str, int] = {}  # events in a row too late, per service
        self.fleet = FleetView(policy)  # the moves of every service (detectors.fleet)

    def get(self, service: str) -> ServiceMonitor | None:
        """The live monitor of ``service``, None when this set holds none."""
        return self._monitors.get(service)

    def __contains__(self, service: object) -> bool:
        return service in self._monitors

    def __iter__(self) -> Iterator[ServiceMonitor]:
        return iter(list(self._monitors.values()))

    def __len__(self) -> int:
        return len(self._monitors)

    def monitor_for(self, service: str) -> ServiceMonitor:
        """The live monitor of ``service``; restored or new when there is none yet."""
        monitor = self._monitors.get(service)
        if monitor is None:
            stored = self._restore(service) if self._restore is not None else None
            if stored:
                monitor = ServiceMonitor.from_bytes(stored, self.policy)
            else:
                monitor = ServiceMonitor(service, self.policy)
            # A drill is judged alone: its moves must never count towards (or hold back)
            # a fleet-wide incident of real services.
            monitor.fleet = None if is_drill(service) else self.fleet
            self._monitors[service] = monitor
        return monitor

    def state_of(self, service: str) -> bytes | None:
        """The live state of ``service`` as bytes, None when this set holds none."""
        monitor = self._monitors.get(service)
        return monitor.to_bytes() if monitor is not None else None

    def forget(self) -> None:
        """Drop every live monitor (the worker, after a rebalance: the table holds the truth)."""
        self._monitors.clear()
        self._late_streak.clear()

    def feed(self, items: Iterable[Item], service: str | None = None,
             roles: Roles | None = None, now: float | None = None) -> Fed:
        """Feed one message's items to its service's monitor.

        ``service`` is the message key (None: the first valid item names it); ``roles``,
        when given, are the ``(stable, candidate, episode, share)`` set on the monitor before its
        first item (the worker reads them from the version pointer); ``now`` is the
        wall-clock time events may not be dated much after (None: not checked).
        """
        fed = Fed()
        monitor: ServiceMonitor | None = None
        if now is not None:
            items = self._not_future(items, now + self.policy.max_future_skew_seconds, fed)
        for item, raw, error in items:
            if item is None:
                assert error is not None
                fed.rejected.append(Rejected(error.reason, error.detail, raw))
                continue
            if service is None:
                service = item.service
            if item.service != service:
                detail = f"event for {item.service!r} in a message keyed {service!r}"
                fed.rejected.append(Rejected("key_mismatch", detail, raw))
                continue
            if monitor is None:
                monitor = self.monitor_for(service)
                if roles is not None:
                    monitor.set_roles(*roles)
                fed.service = service
            if isinstance(item, Event):
                fed.events += 1
                decisions = monitor.observe(item)
            else:
                fed.events += len(item)
                decisions = monitor.observe_block(item)
            if decisions:
                fed.decisions.extend(decisions)
            if monitor.too_late or service in self._late_streak:
                self._count_late(monitor, item, raw, fed)
        return fed

    def _not_future(self, items: Iterable[Item], limit: float, fed: Fed) -> Iterator[Item]:
        # The items dated no later than ``limit``; a block with some later events is split.
        for item, raw, error in items:
            if item is None or (item.ts if isinstance(item, Event) else max(item.ts)) <= limit:
                yield item, raw, error
                continue
            for event, one in _events_of(item, raw):
                if event.ts > limit:
                    detail = (f"ts {event.ts:.3f} is more than "
                              f"{self.policy.max_future_skew_seconds:g} s after the clock's "
                              f"{limit - self.policy.max_future_skew_seconds:.3f}")
                    fed.rejected.append(Rejected("ts_in_future", detail, one))
                else:
                    yield event, one, None

    def _count_late(self, monitor: ServiceMonitor, item: Event | Block, raw: Any,
                    fed: Fed) -> None:
        # Dead-letter the events the monitor found too late; alert once a streak is long.
        late, monitor.too_late = monitor.too_late, []
        slow, monitor.too_late_evaluations = monitor.too_late_evaluations, set()
        service, lateness = monitor.service, self.policy.max_lateness_seconds
        fed.events -= len(late)
        for i in late:
            one = raw if isinstance(item, Event) else _event_dict(item, i)
            ts = item.ts if isinstance(item, Event) else item.ts[i]
            detail = (f"ts {ts:.3f} is more than {lateness:g} s behind {service}'s newest events"
                      if i not in slow else _late_evaluation(self.policy, service, ts))
            fed.rejected.append(Rejected("too_late", detail, one))
        before = self._late_streak.pop(service, 0)
        if len(late) < (1 if isinstance(item, Event) else len(item)):
            return  # some counted: the streak is over
        streak = self._late_streak[service] = before + len(late)
        if before < LATE_STREAK_ALERT <= streak:
            if slow.issuperset(late):  # evaluation results, late for their own clock
                lateness = self.policy.opentelemetry.evaluation_lateness_seconds
            fed.decisions.append(_blind(monitor, item, streak, lateness))

    def flush(self) -> list[Decision]:
        """Close every monitor's open bucket (the end of a replay)."""
        decisions = [decision for monitor in self for decision in monitor.flush()]
        return decisions + [decision for monitor in self
                            for decision in monitor.rule_fleet(float("inf"), force=True)]


def _late_evaluation(policy: Policy, service: str, ts: float) -> str:
    # Why an event's evaluation metrics were not counted (detectors.lanes).
    names = ", ".join(policy.opentelemetry.evaluation_metrics)
    return (f"ts {ts:.3f} is more than {policy.opentelemetry.evaluation_lateness_seconds:g} s "
            f"behind {service}'s newest evaluation results ({names})")


def _event_dict(block: Block, i: int) -> dict[str, Any]:
    """Event ``i`` of a block as the single-event object it stands for."""
    one: dict[str, Any] = {"event_id": block.event_ids[i], "ts": block.ts[i],
                           "service": block.service, "release": block.release}
    if block.cohort:
        one["cohort"] = block.cohort
    one["metrics"] = {name: column[i] for name, column in block.columns.items()
                      if column[i] is not None}
    return one


def _events_of(item: Event | Block, raw: Any) -> Iterator[tuple[Event, Any]]:
    if isinstance(item, Event):
        yield item, raw
        return
    for i, event in enumerate(block_as_events(item)):
        yield event, _event_dict(item, i)


def _blind(monitor: ServiceMonitor, item: Event | Block, streak: int,
           lateness: float) -> Decision:
    # The notice that a service's events all come too late to be judged.
    ts = item.ts if isinstance(item, Event) else max(item.ts)
    release = monitor.candidate.release if monitor.candidate else item.release
    reason = (f"the last {streak} events of {monitor.service} came more than {lateness:g} s "
              f"behind its newest events and were not counted: {monitor.service} is not "
              "being judged (is a producer's clock or a backlog far behind?).")
    evidence = {"why": "too_late", "too_late_in_a_row": streak,
                "max_lateness_seconds": lateness}
    return Decision(ts, monitor.service, release, DecisionAction.ALERT, Verdict.INCONCLUSIVE,
                    monitor.stable, [], reason, evidence)
