"""Events dated far ahead of their service: held aside until time reaches them, so that one
bad clock cannot blind a service.

A service's time is its newest bucket; an event further behind it than the lateness bound is
too late to count. Were one event stamped far ahead (a producer's clock set wrong, an
evaluation stamped "now" in a stream that runs minutes behind) to move that time, every
genuine event after it would be too late: the service would not be judged at all. So an
event more than half the lateness bound ahead of the open bucket is *parked*: it counts
when the service's time comes near it. When :data:`IN_A_ROW` events in a row are parked
with no event of the service's present between them, the service's time itself has moved
(after a gap, or a producer's restart): the parked events up to the newest of those enter,
in time order. Parked events are part of the monitor's state.

>>> from rollguard.detectors.events import Event
>>> ahead = Ahead(jump=150.0)
>>> e = lambda i, ts: Event(f"id-{i}", ts, "chat", "v1", "", {"error": 0.0})
>>> ahead.park(e(1, 5000.0)), ahead.park(e(2, 4000.0)), [x.event_id for x in ahead.reached(4100)]
([], [], ['id-2'])
>>> ahead.present(); ahead.park(e(3, 5010.0)), len(ahead.park(e(4, 5020.0)))
([], 0)
>>> [x.event_id for x in ahead.park(e(5, 5030.0))]
['id-1', 'id-3', 'id-4', 'id-5']
"""

from __future__ import annotations

from bisect import insort
from operator import attrgetter
from typing import Any

from rollguard.detectors.events import Event

IN_A_ROW = 3  # events in a row dated far ahead: the service's time has moved
CAP = 1024  # parked events kept at most; beyond, the earliest enter (time moves on)
_TS = attrgetter("ts")


class Ahead:
    """The parked events of one service, earliest first."""

    def __init__(self, jump: float) -> None:
        self.jump = jump
        self.events: list[Event] = []
        self._ids: set[str] = set()
        self.streak: list[float] = []  # times of the events parked in a row

    def park(self, event: Event) -> list[Event]:
        """Hold ``event`` aside; the events to enter now (none, unless time has moved)."""
        if event.event_id in self._ids:
            return []  # a repeat of a parked event is not a second vote
        insort(self.events, event, key=_TS)
        self._ids.add(event.event_id)
        self.streak.append(event.ts)
        if len(self.streak) >= IN_A_ROW:
            newest = max(self.streak[-IN_A_ROW:])
            self.streak = []
            return self._take(lambda e: e.ts <= newest)
        if len(self.events) > CAP:
            return self._take(lambda e: e.ts <= self.events[len(self.events) - CAP].ts)
        return []

    def present(self) -> None:
        """An event of the service's present came: the parked ones are not in a row."""
        self.streak = []

    def reached(self, horizon: float) -> list[Event]:
        """The parked events dated before ``horizon``: time has come near them."""
        if not self.events or self.events[0].ts >= horizon:
            return []
        return self._take(lambda e: e.ts < horizon)

    def _take(self, taken: Any) -> list[Event]:
        out = [e for e in self.events if taken(e)]
        self.events = [e for e in self.events if not taken(e)]
        self._ids.difference_update(e.event_id for e in out)
        return out

    def to_plain(self) -> list[Any]:
        return [[[e.event_id, e.ts, e.release, e.cohort, e.metrics] for e in self.events],
                self.streak]

    def restore(self, plain: list[Any], service: str) -> None:
        events, self.streak = plain
        self.events = [Event(i, ts, service, release, cohort, metrics)
                       for i, ts, release, cohort, metrics in events]
        self._ids = {e.event_id for e in self.events}
