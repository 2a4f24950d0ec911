"""Catch messages the consumer skipped, and messages it delivers twice, per partition.

Why: around a restart or rebalance, Faust can drop messages it had fetched while recovering
its tables, then never ack them, so offsets stop being committed and the worker stalls
(faust-streaming issue #596, open). The agent therefore checks every message's offset against
the last one it applied on that partition (kept in the changelogged table, so it survives
restarts):

- at or below the last applied offset: a redelivery; skip it (its effect is in the state);
- the next offset: process it;
- beyond the next offset: messages were skipped; seek back to the first missing one and skip
  this one (it comes again after the missing ones, so it is not acknowledged now: the
  consumer would commit past the missing ones before they are applied — Faust commits over a
  single missing offset). Messages the consumer had fetched before
  the seek can win the race again, so ``due()`` repeats the seek every ``retry_s`` until the
  missing offset arrives.

A missing offset is taken as a real gap (a :class:`Gap`, logged as a warning naming the topic,
partition and offsets, and counted in ``accepted`` by topic) when it lies below the
partition's log start offset (``starts``, asked of the broker for the partitions
:meth:`GapGuard.retrying`: it was deleted by retention), or, as a last resort, after
``max_retries`` seeks (30 s: a hole above the log start, which only transaction markers or
compaction leave and no topic the worker reads has; on a loaded machine a missing message
may simply take seconds to come). Reading then resumes at the first offset known to exist.

Pure: offsets and the clock are passed in (the warnings are logged here).

>>> guard = GapGuard(retry_s=1.0, max_retries=3)
>>> guard.admit(0, offset=10, last_applied=9, now=0.0)
Admit(process=True, seek_to=None, later=False)
>>> guard.admit(0, offset=13, last_applied=10, now=1.0)
Admit(process=False, seek_to=11, later=True)
>>> guard.admit(0, offset=11, last_applied=10, now=1.1)
Admit(process=True, seek_to=None, later=False)
>>> guard.admit(0, offset=11, last_applied=11, now=1.2)
Admit(process=False, seek_to=None, later=False)
>>> guard.admit(0, offset=20, last_applied=13, now=2.0)  # 14..19 missing
Admit(process=False, seek_to=14, later=True)
>>> [guard.due(now) for now in (2.5, 3.1, 4.2, 5.3, 6.4)]  # they never come: a real gap
[[], [(0, 14)], [(0, 14)], [(0, 14)], [(0, 20)]]
>>> guard.admit(0, offset=20, last_applied=13, now=6.5)
Admit(process=True, seek_to=None, later=False)
>>> guard.admit(0, offset=40, last_applied=20, now=7.0)  # 21..39 missing
Admit(process=False, seek_to=21, later=True)
>>> guard.retrying(8.0), guard.due(8.0, starts={0: 30})  # 21..29 deleted: read from 30
([0], [(0, 30)])
>>> guard.accepted
Counter({'': 2})
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admit:
    """Whether to process a message now; where to seek first; and whether it was skipped
    because it comes again after a seek (``later``: leave it unacknowledged until then)."""

    process: bool
    seek_to: int | None = None
    later: bool = False


@dataclass(frozen=True)
class Gap:
    """Offsets ``first`` to ``end - 1`` of ``partition`` of ``topic`` taken as absent, and
    ``why``: reading goes on at ``end``."""

    topic: str
    partition: int
    first: int
    end: int
    why: str

    def __str__(self) -> str:
        where = f"topic {self.topic!r} partition" if self.topic else "partition"
        return (f"{where} {self.partition}: offsets {self.first}..{self.end - 1} taken as "
                f"absent ({self.why}); reading goes on at offset {self.end}")


@dataclass
class _Seeking:
    target: int  # the first missing offset, sought back to
    trigger: int  # the offset that revealed the gap
    since: float  # when the last seek was issued
    retries: int = 0


def unnamed(partition: int) -> tuple[str, int]:
    """A guard's default naming of its partitions: no topic name."""
    return "", partition


@dataclass
class GapGuard:
    """Per-partition admission of messages by offset; see the module docstring. ``where``
    names a partition (as the guard's owner numbers them) as ``(topic, partition)`` for the
    warnings and ``accepted``, the gaps taken as real by topic (owners list their topics
    at zero)."""

    retry_s: float = 1.0
    max_retries: int = 30
    stall_s: float = 3.0
    where: Callable[[int], tuple[str, int]] = unnamed
    seeks: int = 0
    accepted: Counter[str] = field(default_factory=Counter)
    _seeking: dict[int, _Seeking] = field(default_factory=dict)
    _floor: dict[int, int] = field(default_factory=dict)  # offsets below a real gap's end
    _behind: dict[int, tuple[int, float]] = field(default_factory=dict)  # (applied, since)

    @property
    def accepted_gaps(self) -> int:
        """Gaps taken as real, on all partitions."""
        return sum(self.accepted.values())

    def admit(self, partition: int, offset: int, last_applied: int | None, now: float) -> Admit:
        if last_applied is None:
            self._seeking.pop(partition, None)
            return Admit(True)  # first message ever on this partition: nothing to compare
        expected = max(last_applied + 1, self._floor.get(partition, 0))
        if offset < expected:
            return Admit(False)
        if offset == expected:
            self._seeking.pop(partition, None)
            self._floor.pop(partition, None)
            return Admit(True)
        seeking = self._seeking.get(partition)
        if seeking is None or seeking.target != expected:
            self._seeking[partition] = _Seeking(expected, offset, now)
            self.seeks += 1
            return Admit(False, seek_to=expected, later=True)
        return Admit(False, later=True)  # waiting for the missing offset; due() repeats the seek

    def retrying(self, now: float) -> list[int]:
        """The partitions whose seek :meth:`due` repeats now: pass their log start offsets
        to it, when they can be had."""
        return [partition for partition, seeking in self._seeking.items()
                if now - seeking.since >= self.retry_s]

    def due(self, now: float, starts: Mapping[int, int] | None = None,
            ) -> list[tuple[int, int]]:
        """Seeks to issue again now, as ``(partition, offset)``; call it every ``retry_s``.
        ``starts``: the log start offset of partitions :meth:`retrying` (offsets below it
        were deleted: a gap there is real at once)."""
        again = []
        for partition in self.retrying(now):
            seeking = self._seeking[partition]
            start = (starts or {}).get(partition)
            if start is not None and start > seeking.target:
                self._accept(partition, seeking, start, now,
                             f"below the partition's log start offset {start}: deleted")
            elif seeking.retries >= self.max_retries and seeking.trigger > seeking.target:
                # The missing offsets never came: they do not exist. Go on from the first
                # offset known to exist; it was skipped and must come again.
                self._accept(partition, seeking, seeking.trigger, now,
                             f"not read after {seeking.retries + 1} seeks, one every "
                             f"{self.retry_s:g} s")
            else:
                seeking.retries += 1
                seeking.since = now
            again.append((partition, self._seeking[partition].target))
        self.seeks += len(again)
        return again

    def _accept(self, partition: int, seeking: _Seeking, end: int, now: float,
                why: str) -> None:
        """Offsets from the seek's target to ``end - 1`` do not exist: expect ``end`` next."""
        topic, number = self.where(partition)
        gap = Gap(topic, number, seeking.target, end, why)
        log.warning("gap guard: %s", gap)
        self.accepted[topic] += 1
        self._floor[partition] = end
        self._seeking[partition] = _Seeking(end, max(seeking.trigger, end), now)

    def stalled(self, partition: int, applied: int | None, end: int | None,
                now: float) -> int | None:
        """Where to seek ``partition`` when messages exist beyond the last applied offset
        (``end``: the partition's high watermark) but none arrived for ``stall_s``: the
        messages Faust dropped were the last ones, so no later offset reveals the gap.

        >>> guard = GapGuard(stall_s=3.0)
        >>> [guard.stalled(0, 4, 10, now) for now in (0.0, 2.0, 3.5, 4.0, 7.0)]
        [None, None, 5, None, 5]
        >>> guard.stalled(0, 9, 10, 8.0), guard.stalled(0, 5, 10, 20.0)  # caught up; moved on
        (None, None)
        """
        if applied is None or end is None or end <= applied + 1 or partition in self._seeking:
            self._behind.pop(partition, None)
            return None
        seen, since = self._behind.get(partition, (applied, now))
        if seen != applied:
            seen, since = applied, now
        if now - since < self.stall_s:
            self._behind[partition] = (seen, since)
            return None
        self._behind[partition] = (applied, now)
        self.seeks += 1
        return applied + 1

    def forget(self) -> None:
        """After a rebalance: any seek in progress belonged to the old assignment."""
        self._seeking.clear()
        self._floor.clear()
        self._behind.clear()
