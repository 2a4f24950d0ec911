"""A destination's queue: bounded, retried with backoff, and summarised when it backs up.

The stream never waits for a receiver: messages are put here and the destination's sender
takes them when it can. A failed delivery is retried after :func:`retry_delay`; while the head
has waited longer than ``summarise_after_s``, or the queue is full, everything queued is
collapsed into one :class:`Digest` (per episode its latest message), so a receiver that was
down for an hour gets one summary, not an hour of messages. Pure: time is passed in.

>>> box = Outbox(base_s=1.0)
>>> box.put(message := Message(Episode("chat", "v2", 0.0), (), (), 0, True), now=0.0)
>>> box.ready(now=0.0) is message
True
>>> box.failed(now=0.0); box.ready(now=0.5) is None, box.next_attempt_at()
(True, 1.0)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from rollguard.notify.episodes import Episode, Message

__all__ = ["Digest", "Episode", "Item", "Message", "Outbox", "OutboxStats", "newest_drill_notice",
           "retry_delay", "summarise"]
MAX_DIGEST_EPISODES = 50


def retry_delay(attempt: int, base_s: float, cap_s: float, spread: float = 0.0) -> float:
    """Seconds before retry ``attempt`` (1 = the first retry): doubling from ``base_s`` up to
    ``cap_s``; ``spread`` in [0, 1) (random at the edge) takes off up to half, so senders
    that failed together do not retry together.

    >>> [retry_delay(a, 1.0, 10.0) for a in (1, 2, 3, 4, 5, 40)]
    [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    >>> retry_delay(2, 1.0, 10.0, spread=0.5)
    1.5
    """
    if attempt < 1:
        return 0.0
    return min(cap_s, base_s * 2.0 ** min(attempt - 1, 60)) * (1.0 - spread / 2.0)


@dataclass(frozen=True)
class Digest:
    """Several messages told as one: ``count`` of them since ``since``, per episode the
    latest (``latest``; its ``pages`` the episode's last page action), and how many episodes
    did not fit (``dropped``)."""

    since: float
    count: int
    latest: tuple[Message, ...]
    dropped: int = 0


Item = Message | Digest


def summarise(items: list[tuple[float, Item]]) -> Digest:
    """One digest of queued ``(queued_at, item)`` entries, oldest first."""
    latest: dict[tuple[str, str, float], Message] = {}
    count = dropped = 0
    for _, item in items:
        parts = item.latest if isinstance(item, Digest) else (item,)
        count += item.count if isinstance(item, Digest) else 1
        dropped += item.dropped if isinstance(item, Digest) else 0
        for message in parts:
            slot = (*message.episode.key, message.episode.opened_at)
            before = latest.pop(slot, None)
            pages = message.pages[-1:] or (before.pages if before else ())
            latest[slot] = replace(message, pages=pages, first=bool(before and before.first)
                                   or message.first)
    kept = list(latest.values())
    extra = max(0, len(kept) - MAX_DIGEST_EPISODES)
    return Digest(since=items[0][0] if items else 0.0, count=count,
                  latest=tuple(kept[extra:]), dropped=dropped + extra)


@dataclass
class OutboxStats:
    """Counters of one destination (``failed``: attempts that failed, retried or not);
    ``drill_notice_at``: the time of the newest notice of a drill delivered (0: none), by
    which ``rollguard drill`` sees its notification arrive."""

    sent: int = 0
    failed: int = 0
    rejected: int = 0
    summarised: int = 0
    drill_notice_at: float = 0.0


def newest_drill_notice(item: Item) -> float:
    """The time of the newest notice of a drill episode in ``item`` (0: it has none).

    >>> from rollguard.notify.notices import Notice
    >>> told = (Notice("rolled-back", "", None, 42.0, "Rolled back", "", "", "info"),)
    >>> drill = Message(Episode("rollguard-drill", "drill-01", 0.0), told, (), 0, True)
    >>> real = Message(Episode("chat", "v2", 0.0), told, (), 0, True)
    >>> newest_drill_notice(drill), newest_drill_notice(Digest(0.0, 2, (drill, real)))
    (42.0, 42.0)
    >>> newest_drill_notice(real)
    0.0
    """
    messages = item.latest if isinstance(item, Digest) else (item,)
    return max((n.at for m in messages if m.episode.drill for n in m.notices), default=0.0)


@dataclass
class Outbox:
    capacity: int = 100
    base_s: float = 1.0
    cap_s: float = 60.0
    summarise_after_s: float = 60.0
    stats: OutboxStats = field(default_factory=OutboxStats)
    _queue: deque[tuple[float, Item]] = field(default_factory=deque)
    _attempts: int = 0
    _retry_at: float = 0.0

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, item: Item, now: float) -> None:
        self._queue.append((now, item))
        if len(self._queue) >= self.capacity:
            self._summarise()

    def ready(self, now: float) -> Item | None:
        """The item to send now; None when the queue is empty or waits for a retry."""
        if not self._queue or now < self._retry_at:
            return None
        if len(self._queue) > 1 and now - self._queue[0][0] > self.summarise_after_s:
            self._summarise()
        return self._queue[0][1]

    def next_attempt_at(self) -> float | None:
        return self._retry_at if self._queue else None

    def delivered(self, now: float) -> None:
        """The head reached its receiver."""
        item = self._queue.popleft()[1]
        self.stats.sent += 1
        self.stats.drill_notice_at = max(self.stats.drill_notice_at, newest_drill_notice(item))
        self._attempts, self._retry_at = 0, now

    def failed(self, now: float, spread: float = 0.0) -> None:
        """The head did not arrive; it is tried again after a backoff."""
        self.stats.failed += 1
        self._attempts += 1
        self._retry_at = now + retry_delay(self._attempts, self.base_s, self.cap_s, spread)

    def rejected(self, now: float) -> None:
        """The receiver refused the head for good (a 4xx): retrying cannot help, so drop it."""
        self._queue.popleft()
        self.stats.failed += 1
        self.stats.rejected += 1
        self._attempts, self._retry_at = 0, now

    def _summarise(self) -> None:
        entries = list(self._queue)
        self.stats.summarised += sum(
            i.count if isinstance(i, Digest) else 1 for _, i in entries)
        self._queue.clear()
        self._queue.append((entries[0][0], summarise(entries)))
