"""The fleet: many services moving together is an incident upstream, not many regressions.

A candidate that serves all of its service's traffic (a cutover) has no stable release to be
compared with at the same moments, only the history (:mod:`detectors.weather` covers
canaries). When one of its metrics moves away from that history, the monitor tells the
fleet a :class:`Move`; so does a storm of a canary's stable release. A sustained verdict of
a cut-over candidate that others moved with waits ``fleet_wait_seconds`` and is then
ruled: when at least ``fleet_min_services`` services (itself included) moved on the same
metric within ``fleet_window_seconds`` of its start, it is **held** — not a rollback — and
the first service held raises one fleet-wide alert naming them all; otherwise it is the
rollback it was. Workers that each hold some of the services share their moves
(``streams/fleet.py``), so the view is the fleet's, not a partition's.

>>> from rollguard.detectors.policy import default_policy
>>> view = FleetView(default_policy())
>>> for i in range(5):
...     view.add(Move(f"svc-{i}", "error", 1000.0 + 20 * i))
>>> view.together(Move("svc-0", "error", 1000.0))
['svc-1', 'svc-2', 'svc-3', 'svc-4']
>>> view.together(Move("svc-9", "latency_ms", 1000.0))
[]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rollguard.detectors.policy import Policy

MEMORY_SECONDS = 6 * 3600.0  # moves older than this (event time) are forgotten


@dataclass(frozen=True, slots=True)
class Move:
    """``service``'s ``metric`` moved away from its history from ``start`` (event time)."""

    service: str
    metric: str
    start: float

    def to_list(self) -> list[object]:
        return [self.service, self.metric, self.start]

    @classmethod
    def from_list(cls, data: list[object]) -> Move:
        service, metric, start = data
        if not isinstance(service, str) or not isinstance(metric, str) or not isinstance(
                start, int | float) or isinstance(start, bool):
            raise ValueError(f"not a move [service, metric, start]: {data!r}")
        return cls(service, metric, float(start))


@dataclass
class Incident:
    """A fleet-wide incident alerted once: its metric, when it began and who moved."""

    metric: str
    start: float
    services: list[str] = field(default_factory=list)


class FleetView:
    """The moves of the fleet's services, and the incidents alerted."""

    def __init__(self, policy: Policy) -> None:
        self.window = policy.fleet_window_seconds
        self.min_services = policy.fleet_min_services
        self.moves: dict[tuple[str, str, float], Move] = {}
        self.incidents: list[Incident] = []
        self.outbox: list[Move] = []  # moves told here and not yet shared with other workers
        self._newest = float("-inf")

    def add(self, move: Move, *, local: bool = False) -> None:
        """Record a move; ``local``: a monitor of this process told it (it is shared)."""
        key = (move.service, move.metric, move.start)
        if key in self.moves:
            return
        self.moves[key] = move
        if local:
            self.outbox.append(move)
        if move.start > self._newest:
            self._newest = move.start
            old = [k for k, m in self.moves.items() if m.start < move.start - MEMORY_SECONDS]
            for k in old:
                del self.moves[k]

    def together(self, move: Move) -> list[str]:
        """The other services that moved on ``move``'s metric within the window of it."""
        return sorted({m.service for m in self.moves.values()
                       if m.metric == move.metric and m.service != move.service
                       and abs(m.start - move.start) <= self.window})

    def rule(self, move: Move) -> tuple[Incident | None, bool]:
        """``(incident, new)``: the fleet-wide incident ``move`` belongs to (None: it stands
        alone, not enough services moved with it) and whether it is alerted only now."""
        others = self.together(move)
        if len(others) + 1 < self.min_services:
            return None, False
        for incident in self.incidents:
            if incident.metric == move.metric and abs(incident.start - move.start) <= self.window:
                if move.service not in incident.services:
                    incident.services.append(move.service)
                return incident, False
        incident = Incident(move.metric, move.start, [move.service, *others])
        self.incidents = [*self.incidents[-63:], incident]
        return incident, True
