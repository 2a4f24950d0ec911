"""Events into a service's open event-time bucket, each counted once.

Per event only a duplicate check and an append to the open bucket; an event of a later
bucket closes the open one first (:meth:`EventIntake._close`, the monitor's judgement). A
block of events (:mod:`detectors.blocks`) takes the same steps a column at a time, and
decides exactly as its events one by one would. Time is the events' own time, never the
clock of the machine.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from rollguard.detectors.accumulate import Bucket, compile_slots
from rollguard.detectors.ahead import Ahead
from rollguard.detectors.blocks import Block, block_as_events
from rollguard.detectors.decision import Decision
from rollguard.detectors.dedupe import DEDUPE_CAP, IdMemory
from rollguard.detectors.events import Event
from rollguard.detectors.policy import Policy
from rollguard.detectors.strata import Pending, Strata


class EventIntake(ABC):
    """The open bucket of one service and how events enter it; a subclass judges a closed
    bucket (:meth:`_close`) and learns of each release seen in a bucket (:meth:`_infer_roles`).
    """

    def __init__(self, policy: Policy, *, dedupe_cap: int = DEDUPE_CAP):
        self.policy = policy
        self._slots = compile_slots(policy)
        self._bucket = -1  # index of the open bucket (ts // bucket_seconds), -1 before any
        self._open: dict[str, Pending] = {}  # release -> its events in the open bucket
        self._carried: dict[str, Bucket] = {}  # release -> exact sums from before a restore
        self._strata: Strata | None = None  # by cohort, once an event has one
        # Ids seen within the lateness bound of event time (see detectors.dedupe): a
        # duplicate is dropped, or it is too late to count anyway.
        self._seen = IdMemory(bucket_seconds=policy.bucket_seconds,
                              window_seconds=policy.max_lateness_seconds, cap=dedupe_cap)
        # dedupe_evicted: ids forgotten before their time because of the cap (a flood).
        self.counts = {"duplicates": 0, "late": 0, "too_late": 0, "dedupe_evicted": 0}
        # Indices (0 for a single event) of the events of the last observe calls that came
        # too late to count; whoever reads them clears the list (MonitorSet dead-letters them).
        self.too_late: list[int] = []
        self._lateness = policy.max_lateness_seconds
        self.latest_ts = 0.0  # the newest event time seen by this process (0: none yet)
        self._bucket_seconds = policy.bucket_seconds
        self._ahead = Ahead(policy.max_lateness_seconds / 2)
        self._far_from = math.inf  # events from this time on are parked (_far_limit)
        self._ahead_active = False  # events are parked or a streak of them is open
        self._releasing = False

    @abstractmethod
    def _close(self, ts: float) -> list[Decision]:
        """Judge the open bucket, closed at event time ``ts``; its decisions."""

    @abstractmethod
    def _infer_roles(self, release: str) -> None:
        """``release`` has its first event in the open bucket."""

    def observe(self, event: Event) -> list[Decision]:
        """Count one valid event; return the decisions of any bucket it closes. One dated
        far ahead of the service is parked until time comes near it (detectors.ahead)."""
        if event.ts >= self._far_from:
            return self._release(self._ahead.park(event))
        if not self._is_new(event.event_id, event.ts):
            return []
        decisions, counted = self._enter(event.ts)
        if counted:
            if event.cohort or self._strata is not None:  # before the aggregate: see _stratum
                self._stratum(event.release, event.cohort)[0].append(event.metrics)
            self._pending(event.release)[0].append(event.metrics)
        else:
            self.too_late.append(0)
        if self._ahead_active:  # (one attribute per event: parking is rare)
            decisions += self._present()
        return decisions

    def _present(self) -> list[Decision]:
        # An event of the service's present came: parked ones are not in a row, and time
        # may have come near some of them.
        self._ahead.present()
        return self._release(self._ahead.reached(self._far_from))

    def _release(self, events: list[Event]) -> list[Decision]:
        # Enter parked events in time order (none is parked again meanwhile); entering them
        # may bring others near.
        decisions: list[Decision] = []
        while events:
            self._releasing, self._ahead_active, self._far_from = True, False, math.inf
            for event in events:
                decisions += self.observe(event)
            self._releasing = False
            self._far_from = self._far_limit()
            events = self._ahead.reached(self._far_from)
        self._ahead_active = bool(self._ahead.events or self._ahead.streak)
        return decisions

    def _far_limit(self) -> float:
        # Events dated from here on are far ahead of the open bucket (none before any).
        if self._bucket < 0 or self._releasing:
            return math.inf
        return (self._bucket + 1) * self._bucket_seconds + self._ahead.jump

    def _restored(self) -> None:
        """Derive what is not stored, after a state was read."""
        self._far_from = self._far_limit()
        self._ahead_active = bool(self._ahead.events or self._ahead.streak)

    def _is_new(self, event_id: str, ts: float) -> bool:
        # Remember one event id; False for a duplicate within the window.
        if event_id in self._seen.ids:
            self.counts["duplicates"] += 1
            return False
        bucket = int(ts // self._bucket_seconds)
        evicted = self._seen.add(event_id, bucket if bucket > self._bucket else self._bucket)
        if evicted:
            self.counts["dedupe_evicted"] += evicted
        return True

    @property
    def remembered_ids(self) -> int:
        """How many event ids the dedupe memory holds now."""
        return len(self._seen)

    def _remember(self, event_ids: Sequence[str], bucket: int) -> None:
        # Filed under the open bucket as it is once they are entered (never before theirs).
        evicted = self._seen.remember(event_ids, bucket)
        if evicted:
            self.counts["dedupe_evicted"] += evicted

    def _enter(self, ts: float) -> tuple[list[Decision], bool]:
        # Place an event at ``ts``: close the open bucket when it starts a later one (its
        # decisions are returned), and say whether it is counted (False: too late).
        if ts > self.latest_ts:
            self.latest_ts = ts
        bucket = int(ts // self._bucket_seconds)
        if bucket > self._bucket:
            decisions = self._close(ts) if self._bucket >= 0 else []
            self._bucket = bucket
            self._far_from = self._far_limit()
            return decisions, True
        if bucket < self._bucket:
            # A few seconds out of order: count it in the open bucket, a smear of one bucket.
            if (self._bucket - bucket) * self._bucket_seconds > self._lateness:
                self.counts["too_late"] += 1
                return [], False
            self.counts["late"] += 1
        return [], True

    def observe_block(self, block: Block) -> list[Decision]:
        """Count a block of valid events: the same as :meth:`observe` on each, in order."""
        ids, ts = block.event_ids, block.ts
        if max(ts) >= self._far_from:
            return self._observe_parking(block)
        if (not self._seen.all_new(ids) or ts != sorted(ts)
                or ts[0] // self._bucket_seconds < self._bucket):
            return self._observe_each(block)
        # In time order and none late (the usual case): each bucket's events are one slice.
        decisions: list[Decision] = []
        bucket_of: Any = self._bucket_seconds.__rfloordiv__  # t // bucket_seconds, as observe
        start = 0
        while start < len(ts):
            bucket = bucket_of(ts[start])
            end = bisect_left(ts, bucket + 1, lo=start, key=bucket_of)
            self._remember(ids[start:end], int(bucket))
            decisions += self._enter(ts[start])[0]  # never too late: none is late here
            self._add_block(block, slice(start, end))
            start = end
        if ts[-1] > self.latest_ts:  # _enter saw each bucket's first event time only
            self.latest_ts = ts[-1]
        if self._ahead_active:
            decisions += self._present()
        return decisions

    def observe_interleaved(self, blocks: Sequence[Block],
                            event_ids: list[str]) -> list[Decision] | None:
        """Count blocks whose events came interleaved: the same as :meth:`observe` on each
        event in the order they came (``event_ids``), the blocks given in the order of their
        first events. Only when all the events fall in one bucket, not before the open one,
        and none is a duplicate; otherwise returns None, having done nothing."""
        width = self._bucket_seconds
        first = blocks[0].ts[0]
        bucket = first // width
        if bucket < self._bucket or any(
                min(b.ts) // width != bucket or max(b.ts) // width != bucket for b in blocks):
            return None
        if not self._seen.all_new(event_ids):
            return None
        self._remember(event_ids, int(bucket))
        decisions = self._enter(first)[0]  # only the first event can close a bucket
        for block in blocks:
            self._add_block(block, slice(None))
        return decisions

    def _observe_parking(self, block: Block) -> list[Decision]:
        # A block with events far ahead: each event as observe() takes it, so that those
        # are parked; an event too late is named by its index in the block.
        decisions: list[Decision] = []
        for i, event in enumerate(block_as_events(block)):
            before = len(self.too_late)
            decisions += self.observe(event)
            if len(self.too_late) > before:  # observe() names a lone event 0
                self.too_late[before:] = [i]
        return decisions

    def _observe_each(self, block: Block) -> list[Decision]:
        # observe()'s steps for each event; runs of events that open no bucket are added
        # together, each run before the close of its bucket.
        decisions: list[Decision] = []
        take: list[int] = []
        ids, ts, width = block.event_ids, block.ts, self._bucket_seconds
        for i in range(len(ts)):
            if not self._is_new(ids[i], ts[i]):
                continue
            if take and ts[i] // width > self._bucket:
                self._add_block(block, take)
                take = []
            closed, counted = self._enter(ts[i])
            decisions += closed
            if counted:
                take.append(i)
            else:
                self.too_late.append(i)
        if take:
            self._add_block(block, take)
        return decisions

    def _add_block(self, block: Block, part: slice | list[int]) -> None:
        by_cohort = (self._stratum(block.release, block.cohort)[1]
                     if block.cohort or self._strata is not None else None)
        columns = self._pending(block.release)[1]
        for name in self._slots:
            raw = block.columns.get(name)
            if raw is None:
                continue
            if type(part) is slice:
                values = block.dense[name][part] if name in block.gapless else [
                    float(v) for v in raw[part] if v is not None]
            else:
                values = [float(raw[i]) for i in part if raw[i] is not None]
            if values:
                have = columns.get(name)
                if have is None:
                    columns[name] = values
                else:
                    have.extend(values)
                if by_cohort is not None:
                    by_cohort.setdefault(name, []).extend(values)

    def _stratum(self, release: str, cohort: str) -> Pending:
        # The first event with a cohort starts the strata with the open bucket's events so
        # far, as cohort "": the bucket's strata then hold all its events, in whatever order
        # they came (blocks are added a release at a time), as the aggregate does.
        if self._strata is None:
            self._strata = Strata.starting(self.policy.max_cohorts, self._open, self._carried)
        return self._strata.pending(release, cohort)

    def _pending(self, release: str) -> Pending:
        pending = self._open.get(release)
        if pending is None:
            pending = self._open[release] = ([], {})
            self._infer_roles(release)
        return pending
