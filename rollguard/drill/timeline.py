"""A drill's hops judged: each one's latency against its bound, and the first that failed or
took too long. Pure: what the drill observed in, a verdict and its printed lines out.

Each hop is timed from the one it waits for (:data:`AFTER`), on the drill's own clock
(seconds since the drill began). The decision has a second bound, in event time: how long
after the canary's first event the worker rolled it back, against what ``rollguard policy
explain`` expects at the drill's traffic.

>>> seen = {Hop.PROMOTE: Seen(0.01), Hop.EVENTS: Seen(2.6, took=0.03),
...         Hop.DECISION: Seen(3.0, event_s=150.0), Hop.COMMAND: Seen(3.01),
...         Hop.FLIP: Seen(3.02), Hop.READER: Seen(3.021), Hop.NOTIFY: Seen(5.1)}
>>> judge(seen, Bounds(decision_event_s=160.0)).passed
True
>>> verdict = judge({**seen, Hop.DECISION: Seen(3.0, event_s=170.0)},
...                 Bounds(decision_event_s=160.0))
>>> verdict.failed.hop, verdict.failed.status
(<Hop.DECISION: 'decision'>, 'slow')
>>> judge({Hop.PROMOTE: Seen(0.01), Hop.EVENTS: Seen(2.6, took=0.03),
...        Hop.DECISION: Failed("no decision")}, Bounds()).headline()
'drill FAILED at rollback decided: no decision'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Hop(StrEnum):
    """The hops of a drill, in the order they happen; the value is the metrics' label."""

    PROMOTE = "promote"
    EVENTS = "events"
    DECISION = "decision"
    COMMAND = "command"
    FLIP = "flip"
    READER = "reader"
    NOTIFY = "notify"


LABELS = {
    Hop.PROMOTE: "canary promoted", Hop.EVENTS: "events accepted",
    Hop.DECISION: "rollback decided", Hop.COMMAND: "command issued",
    Hop.FLIP: "pointer flipped", Hop.READER: "reader switched",
    Hop.NOTIFY: "notification delivered",
}
# The hop each one waits for: its latency is measured from there (None: the drill's start).
AFTER: dict[Hop, Hop | None] = {
    Hop.PROMOTE: None, Hop.EVENTS: Hop.PROMOTE, Hop.DECISION: Hop.EVENTS,
    Hop.COMMAND: Hop.DECISION, Hop.FLIP: Hop.COMMAND, Hop.READER: Hop.FLIP,
    Hop.NOTIFY: Hop.FLIP,
}


@dataclass(frozen=True)
class Bounds:
    """How long each hop may take, in seconds (docs/drill.md explains each figure)."""

    promote_s: float = 5.0  # a promote in Redis, made by the drill itself
    events_s: float = 10.0  # the broker acknowledging a batch of the drill's events
    decision_s: float = 30.0  # the worker's decision after the last events were accepted
    command_s: float = 5.0  # the rollback command on the commands topic after the decision
    flip_s: float = 5.0  # the actuator's flip after the command
    reader_s: float = 2.0  # a PointerReader following the pointer after the flip
    notify_s: float = 15.0  # the notifier's batch (2 s) and one delivery (10 s) after the flip
    decision_event_s: float = math.inf  # event time, canary's first event to the decision

    def of(self, hop: Hop) -> float:
        value: float = getattr(self, f"{hop.value}_s")
        return value

    def patience(self, hop: Hop) -> float:
        """How long the drill waits for ``hop`` before calling it failed: twice its bound,
        so that a slow hop is told apart from a dead one."""
        return 2.0 * self.of(hop)


@dataclass(frozen=True)
class Seen:
    """A hop observed ``at`` seconds into the drill. ``took`` overrides the latency measured
    from the hop before (the events' is the broker's slowest acknowledgement, not the time
    spent waiting to send); ``event_s``: the decision's event time after the canary's first
    event."""

    at: float
    note: str = ""
    took: float | None = None
    event_s: float | None = None


@dataclass(frozen=True)
class Failed:
    """A hop that did not happen, and why."""

    why: str


@dataclass(frozen=True)
class Skipped:
    """A hop that is not checked, and why (no notifier destination takes drills)."""

    why: str


Observation = Seen | Failed | Skipped


@dataclass(frozen=True)
class HopResult:
    hop: Hop
    status: str  # ok | slow | failed | skipped | not reached
    at: float | None
    took: float | None
    bound: float
    note: str
    event_s: float | None = None  # the decision's, in event time

    @property
    def bad(self) -> bool:
        return self.status in ("slow", "failed")


@dataclass(frozen=True)
class Verdict:
    hops: tuple[HopResult, ...]

    @property
    def failed(self) -> HopResult | None:
        """The first hop that failed or took longer than its bound."""
        return next((h for h in self.hops if h.bad), None)

    @property
    def passed(self) -> bool:
        return all(h.status in ("ok", "skipped") for h in self.hops)

    def headline(self) -> str:
        failed = self.failed
        if failed is not None:
            return f"drill FAILED at {LABELS[failed.hop]}: {failed.note}"
        if not self.passed:
            return "drill did not finish"
        end = max((h.at for h in self.hops if h.at is not None), default=0.0)
        return f"drill passed in {duration(end)}"


def judge(observed: Mapping[Hop, Observation], bounds: Bounds) -> Verdict:
    """Each hop's result, in order; a hop not observed is ``not reached``."""
    return Verdict(tuple(_result(hop, observed, bounds) for hop in Hop))


def _result(hop: Hop, observed: Mapping[Hop, Observation], bounds: Bounds) -> HopResult:
    bound, seen = bounds.of(hop), observed.get(hop)
    if seen is None:
        return HopResult(hop, "not reached", None, None, bound, "")
    if isinstance(seen, Failed):
        return HopResult(hop, "failed", None, None, bound, seen.why)
    if isinstance(seen, Skipped):
        return HopResult(hop, "skipped", None, None, bound, seen.why)
    before = AFTER[hop]
    start = observed.get(before) if before is not None else None
    since = start.at if isinstance(start, Seen) else 0.0
    took = seen.took if seen.took is not None else max(0.0, seen.at - since)
    status, note = ("ok" if took <= bound else "slow"), seen.note
    if took > bound:
        note = f"took {duration(took)}, longer than its bound of {duration(bound)}; {note}"
    if seen.event_s is not None and seen.event_s > bounds.decision_event_s:
        status = "slow"
        note = (f"{seen.event_s:.0f} s of event time after the canary's first event, later "
                f"than policy explain expects (at most {bounds.decision_event_s:.0f} s)")
    return HopResult(hop, status, seen.at, took, bound, note, seen.event_s)


def duration(seconds: float) -> str:
    """A latency as a person reads it.

    >>> duration(0.0042), duration(0.381), duration(2.1), duration(75.0)
    ('4 ms', '381 ms', '2.1 s', '75 s')
    """
    if seconds < 1.0:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s" if seconds < 10.0 else f"{seconds:.0f} s"


MARKS = {"ok": "ok", "slow": "SLOW", "failed": "FAIL", "skipped": "skip", "not reached": "-"}


def lines(verdict: Verdict) -> list[str]:
    """The timeline as printed: one line per hop, then the headline."""
    out = []
    for h in verdict.hops:
        at = f"+{h.at:.3f} s" if h.at is not None else ""
        took = f"{duration(h.took):>7} / {duration(h.bound)}" if h.took is not None else ""
        out.append(f"  {MARKS[h.status]:<5} {LABELS[h.hop]:<23} {at:>10}  {took:<16} "
                   f"{h.note}".rstrip())
    return [*out, verdict.headline()]
