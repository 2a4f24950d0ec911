"""Notices grouped into episodes, one thread each, and batched into messages.

An **episode** is a service's candidate release in trouble: ``(service, release)``. Its first
alert, any escalation, the rollback decision, the request for approval and the flip all
belong to it; outcomes (which name no release) find it by their command id, or else by the
service's latest episode. An episode closes when it has been quiet for ``idle_s`` of record
time; the next notice of that release opens a new one.

Rate limits: a record seen before (an alert and its audit twin, a redelivery) is dropped; an
alert identical to one told less than ``repeat_s`` earlier (record time) is held back and
counted, and the count rides on the episode's next message. Notices of an episode that
arrive within ``batch_s`` (wall-clock, passed in) of its first pending one go out as one
message, so a decision and the flip 10 ms later make one message, not two.

Pure: time is passed in; nothing here does I/O.

>>> from rollguard.notify.notices import read_record
>>> book, batch = EpisodeBook(), Batcher(batch_s=2.0)
>>> alert = {"type": "alert", "at": 100.0, "service": "chat", "release": "v2",
...          "action": "alert", "verdict": "transient", "evidence": {"metric": "error"}}
>>> for record in (alert, {**alert, "type": "decision"}, {**alert, "at": 160.0}):
...     update = book.add(read_record(record))
...     if update: batch.add(update, now=0.0)
>>> [(m.episode.key, len(m.notices)) for m in batch.due(now=2.0)]
[(('chat', 'v2'), 1)]
>>> book.add(read_record({**alert, "at": 900.0})).held_back
1
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace

from rollguard.detectors.names import is_drill
from rollguard.notify.notices import Notice, Page

Key = tuple[str, str]


@dataclass(frozen=True)
class Episode:
    """What a message says about its thread. ``sequence`` counts the episode's messages."""

    service: str
    release: str
    opened_at: float
    state: str = "open"  # open | paging | resolved

    @property
    def key(self) -> Key:
        return (self.service, self.release)

    @property
    def drill(self) -> bool:
        """An episode of a drill service (rollguard drill): a rehearsal, paging nobody."""
        return is_drill(self.service)

    @property
    def dedup_key(self) -> str:
        """One PagerDuty alert per episode (PagerDuty allows 255 characters)."""
        return f"rollguard/{self.service}/{self.release}/{self.opened_at:.0f}"[:255]


@dataclass(frozen=True)
class Update:
    """A notice placed in its episode; ``held_back``: identical alerts not told before it."""

    episode: Episode
    notice: Notice
    held_back: int = 0
    page: Page | None = None


@dataclass(frozen=True)
class Message:
    """What one destination receives about one episode: its notices since the last message,
    the pages they ask for in order, and how many identical alerts were held back."""

    episode: Episode
    notices: tuple[Notice, ...]
    pages: tuple[Page, ...]
    held_back: int
    first: bool


@dataclass
class _Thread:
    episode: Episode
    last_at: float
    told: dict[str, float] = field(default_factory=dict)  # repeat_key -> record time told
    held_back: int = 0


class EpisodeBook:
    """Assigns notices to episodes; bounded (``max_episodes``, ``max_seen``)."""

    def __init__(self, repeat_s: float = 600.0, idle_s: float = 3600.0,
                 max_episodes: int = 1000, max_seen: int = 10_000) -> None:
        self.repeat_s, self.idle_s = repeat_s, idle_s
        self.max_episodes, self.max_seen = max_episodes, max_seen
        self._threads: OrderedDict[Key, _Thread] = OrderedDict()
        self._commands: OrderedDict[str, Key] = OrderedDict()
        self._seen: OrderedDict[str, None] = OrderedDict()

    def add(self, notice: Notice | None) -> Update | None:
        """The update to tell, or None: nothing to say, a duplicate or a held-back repeat."""
        if notice is None or self._seen_before(notice.fingerprint):
            return None
        thread = self._thread_of(notice)
        notice = notice.placed(thread.episode.release)
        thread.last_at = max(thread.last_at, notice.at)
        if notice.repeat_key:
            told = thread.told.get(notice.repeat_key)
            if told is not None and notice.at - told < self.repeat_s:
                thread.held_back += 1
                return None
            thread.told[notice.repeat_key] = notice.at
        page = _page_change(thread.episode.state, notice.page)
        if page is not None:
            thread.episode = replace(thread.episode,
                                     state="paging" if page == "trigger" else "resolved")
        held, thread.held_back = thread.held_back, 0
        return Update(thread.episode, notice, held, page)

    def _seen_before(self, fingerprint: str) -> bool:
        if not fingerprint:
            return False
        if fingerprint in self._seen:
            return True
        self._seen[fingerprint] = None
        if len(self._seen) > self.max_seen:
            self._seen.popitem(last=False)
        return False

    def _thread_of(self, notice: Notice) -> _Thread:
        key = self._key_of(notice)
        thread = self._threads.get(key)
        if thread is None or notice.at - thread.last_at > self.idle_s:
            thread = _Thread(Episode(key[0], key[1], notice.at), notice.at)
            self._threads[key] = thread
            if len(self._threads) > self.max_episodes:
                self._threads.popitem(last=False)
        self._threads.move_to_end(key)
        if notice.command_id:
            self._commands[notice.command_id] = key
            if len(self._commands) > self.max_episodes:
                self._commands.popitem(last=False)
        return thread

    def _key_of(self, notice: Notice) -> Key:
        if notice.release is not None:
            return (notice.service, notice.release)
        known = self._commands.get(notice.command_id) if notice.command_id else None
        if known is not None and known[0] == notice.service:  # an id names one service
            return known
        latest = [k for k in reversed(self._threads) if k[0] == notice.service]
        return latest[0] if latest else (notice.service, "")


@dataclass
class _Pending:
    since: float
    updates: list[Update]


class Batcher:
    """Holds each episode's updates for ``batch_s`` after its first pending one."""

    def __init__(self, batch_s: float = 2.0) -> None:
        self.batch_s = batch_s
        self._pending: dict[tuple[Key, float], _Pending] = {}
        self._told: set[tuple[Key, float]] = set()

    def add(self, update: Update, now: float) -> None:
        slot = (update.episode.key, update.episode.opened_at)
        self._pending.setdefault(slot, _Pending(now, [])).updates.append(update)

    def next_due(self) -> float | None:
        """When the next message is due (None: nothing waits)."""
        return min((p.since + self.batch_s for p in self._pending.values()), default=None)

    def due(self, now: float) -> list[Message]:
        """The messages whose batch window has closed, oldest first."""
        ready = sorted((p.since, slot) for slot, p in self._pending.items()
                       if now >= p.since + self.batch_s)
        messages = []
        for _, slot in ready:
            updates = self._pending.pop(slot).updates
            messages.append(Message(
                episode=updates[-1].episode,
                notices=tuple(u.notice for u in updates),
                pages=tuple(u.page for u in updates if u.page is not None),
                held_back=sum(u.held_back for u in updates),
                first=slot not in self._told))
            self._told.add(slot)
            if len(self._told) > 10_000:
                self._told.clear()  # forgetting only makes a later message say "new"
        return messages


def _page_change(state: str, asked: Page | None) -> Page | None:
    """The page action a notice makes in an episode in ``state``: one trigger while it pages,
    one resolve once it has paged; PagerDuty needs no more than that.

    >>> [_page_change(s, "trigger") for s in ("open", "paging", "resolved")]
    ['trigger', None, 'trigger']
    >>> [_page_change(s, "resolve") for s in ("open", "paging", "resolved")]
    [None, 'resolve', None]
    """
    if asked == "trigger" and state != "paging":
        return "trigger"
    if asked == "resolve" and state == "paging":
        return "resolve"
    return None
