"""The event ids one service has seen, for a bounded window of event time.

The ids themselves are kept (no hash: two different ids are never taken for one), filed
under the monitor's bucket when each was seen, which is never before the event's own
bucket. A bucket is forgotten once it is more than the lateness bound behind the newest
one, by the same test that makes an event too late to count: so an event with the id *and*
the event time of one seen before is never counted twice. It is dropped as a duplicate, or,
when its id is forgotten, it is too late anyway. Memory is bounded as well (a flood): beyond
``cap`` ids or ``chars`` characters of ids the oldest ids are forgotten first, and counted.
The characters bound keeps a serialised state under Kafka's 1 MB message size (a Faust table
value): 800,000 characters of random ASCII ids (hex, UUIDs) compress to about 540 kB.

>>> memory = IdMemory(bucket_seconds=10.0, window_seconds=300.0, cap=3)
>>> memory.remember(["a", "b"], 0), "a" in memory.ids
(0, True)
>>> memory.remember(["c", "d"], 1), sorted(memory.ids)  # "a" is evicted early: the cap
(1, ['b', 'c', 'd'])
>>> memory.remember(["e"], 32), sorted(memory.ids)  # buckets 0 and 1: over 300 s behind
(0, ['e'])
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

DEDUPE_CAP = 100_000  # ids remembered per service at most (about 10 MB of short ids)
DEDUPE_CHARS = 800_000  # characters of ids remembered per service at most


class IdMemory:
    """Ids filed per bucket, oldest bucket first; ``ids`` is their union, for lookups."""

    __slots__ = ("_bucket_seconds", "_cap", "_filed", "_max_chars", "_window", "chars", "ids")

    def __init__(self, *, bucket_seconds: float, window_seconds: float,
                 cap: int = DEDUPE_CAP, chars: int = DEDUPE_CHARS) -> None:
        if cap < 1 or chars < 1:
            raise ValueError("the dedupe bounds must be positive")
        self.ids: set[str] = set()
        self.chars = 0  # characters of the ids remembered
        self._filed: deque[tuple[int, list[str]]] = deque()
        self._bucket_seconds = bucket_seconds
        self._window = window_seconds
        self._cap = cap
        self._max_chars = chars

    def all_new(self, ids: Sequence[str]) -> bool:
        """Whether none of ``ids`` is remembered and none repeats within them."""
        return self.ids.isdisjoint(ids) and len(set(ids)) == len(ids)

    def remember(self, ids: Sequence[str], bucket: int) -> int:
        """File new ``ids`` under ``bucket`` (never below a bucket filed before); return how
        many ids the cap made forget before their time."""
        filed = self._filed
        if not filed or filed[-1][0] != bucket:
            self._expire(bucket)
            filed.append((bucket, []))
        filed[-1][1].extend(ids)
        self.ids.update(ids)
        self.chars += sum(map(len, ids))
        if len(self.ids) > self._cap or self.chars > self._max_chars:
            return self._evict()
        return 0

    def add(self, event_id: str, bucket: int) -> int:
        """:meth:`remember` of one new id (the per-event path, kept short)."""
        filed = self._filed
        if not filed or filed[-1][0] != bucket:
            self._expire(bucket)
            filed.append((bucket, []))
        filed[-1][1].append(event_id)
        self.ids.add(event_id)
        self.chars += len(event_id)
        if self.chars > self._max_chars or len(self.ids) > self._cap:
            return self._evict()
        return 0

    def _expire(self, bucket: int) -> None:
        # The test of ServiceMonitor._enter for "too late", so the two bounds never differ.
        filed, width, window = self._filed, self._bucket_seconds, self._window
        while filed and (bucket - filed[0][0]) * width > window:
            ids = filed.popleft()[1]
            self.ids.difference_update(ids)
            self.chars -= sum(map(len, ids))

    def _evict(self) -> int:
        # Oldest first, whole buckets while both bounds stay exceeded after their removal.
        filed, before = self._filed, len(self.ids)
        while len(self.ids) > self._cap or self.chars > self._max_chars:
            oldest = filed[0][1]
            # As few ids from the front as bring both bounds back (the whole bucket at most).
            count = len(self.ids) - self._cap
            over = self.chars - self._max_chars
            if over > 0:  # a loop as long as the ids it evicts
                taken = 0
                for length in map(len, oldest):
                    taken += 1
                    over -= length
                    if over <= 0:
                        break
                count = max(count, taken)
            if count < len(oldest):
                oldest = oldest[:count]
                del filed[0][1][:count]
            else:
                filed.popleft()
            self.ids.difference_update(oldest)
            self.chars -= sum(map(len, oldest))
        return before - len(self.ids)

    def to_list(self) -> list[tuple[int, list[str]]]:
        """``[(bucket, ids), ...]``, oldest first (the serialised form)."""
        return list(self._filed)

    def restore(self, filed: Iterable[tuple[int, list[str]]]) -> None:
        """Take back what :meth:`to_list` gave (``detectors.codec`` checks its types)."""
        for bucket, ids in filed:
            self._filed.append((bucket, ids))
            self.ids.update(ids)
            self.chars += sum(map(len, ids))

    def __len__(self) -> int:
        return len(self.ids)
