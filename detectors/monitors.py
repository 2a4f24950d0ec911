"""The live monitors of many services, and how one message's items reach them.

The worker (one per partition it holds) and ``rollguard replay`` both feed messages here, so
a recording replays exactly as the worker would have judged it. A message carries one
service's events: its key names the service, or, unkeyed, its first valid item does; an
item of another service is rejected (``key_mismatch``). Items are what
``streams.wire.read_message`` yields, read already: ``(event_or_block, raw, None)`` or
``(None, raw, error)`` with ``error.reason`` a short code.

>>> from detectors.policy import default_policy
>>> from detectors.events import Event
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

from detectors.blocks import Block
from detectors.decision import Decision
from detectors.events import Event
from detectors.monitor import ServiceMonitor
from detectors.policy import Policy


class HasReason(Protocol):
    """What a rejection carries: a short, countable reason code and a detail."""

    reason: str
    detail: str


@dataclass(frozen=True)
class _Err:
    reason: str
    detail: str = ""


Item = tuple[Event | Block | None, Any, HasReason | None]
Roles = tuple[str | None, str | None, int | None]  # stable, candidate, candidate's episode


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


class MonitorSet:
    """One :class:`ServiceMonitor` per service, created on first sight or restored.

    ``restore(service)`` returns the stored state bytes (:meth:`ServiceMonitor.to_bytes`) of
    a service this set holds no live monitor of, or None for a fresh one.
    """

    def __init__(self, policy: Policy,
                 restore: Callable[[str], bytes | None] | None = None) -> None:
        self.policy = policy
        self._restore = restore
        self._monitors: dict[str, ServiceMonitor] = {}

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
            self._monitors[service] = monitor
        return monitor

    def state_of(self, service: str) -> bytes | None:
        """The live state of ``service`` as bytes, None when this set holds none."""
        monitor = self._monitors.get(service)
        return monitor.to_bytes() if monitor is not None else None

    def forget(self) -> None:
        """Drop every live monitor (the worker, after a rebalance: the table holds the truth)."""
        self._monitors.clear()

    def feed(self, items: Iterable[Item], service: str | None = None,
             roles: Roles | None = None) -> Fed:
        """Feed one message's items to its service's monitor.

        ``service`` is the message key (None: the first valid item names it); ``roles``,
        when given, are the ``(stable, candidate, episode)`` set on the monitor before its
        first item (the worker reads them from the version pointer).
        """
        fed = Fed()
        monitor: ServiceMonitor | None = None
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
        return fed

    def flush(self) -> list[Decision]:
        """Close every monitor's open bucket (the end of a replay)."""
        return [decision for monitor in self for decision in monitor.flush()]
