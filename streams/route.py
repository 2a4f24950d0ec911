"""Where a message of the events topics goes, decided once: its key, service and owner."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain

from rollguard.actions.keys import service_of_key
from rollguard.detectors.monitors import Item
from rollguard.streams.checkpoint import FORWARDED
from rollguard.streams.wire import read_message


@dataclass(frozen=True)
class Route:
    """A message's routing: the ``lane`` it came on (the partition, plus ``FORWARDED`` for
    the by-service topic), the ``key`` it is judged under, the ``service`` that key names
    (None: no key, or a key that is no service name), whether this partition judges it
    (``owned``; else it is forwarded), and, for an un-keyed message, its ``items``: those
    decoded to find the key, then the rest as they are decoded (read them once; None:
    decode the value when judging it)."""

    lane: int
    key: bytes | None
    service: str | None
    owned: bool
    items: Iterator[Item] | None = None


def first_service(items: Iterable[Item]) -> bytes | None:
    """The service of the first valid item, as a key; None when there is none."""
    for item, _raw, _error in items:
        if item is not None:
            return item.service.encode()
    return None


def route(partition: int, key: bytes | None, value: bytes | None, forwarded: bool,
          owner: Callable[[bytes], int] | None) -> Route:
    """Route one message of ``partition``: its own key, or for an un-keyed message the
    service of its first valid item (what was decoded to find it is kept for judging, so
    the message is decoded once, and no further than that item if it is forwarded). It is
    owned when it came forwarded, has no key, or ``owner`` (None: every partition owns
    every key) gives this partition.

    >>> one = b'{"event_id": "e", "ts": 1.0, "service": "%s", "release": "r", "metrics": {}}'
    >>> r = route(1, None, b"[" + one % b"a" + b"]", False, owner=lambda key: 0)
    >>> r.key, r.service, r.owned, len(list(r.items))
    (b'a', 'a', False, 1)
    >>> route(1, b"b", b"[]", True, owner=lambda key: 0)
    Route(lane=1048577, key=b'b', service='b', owned=True, items=None)
    """
    items = None
    if not key:
        decoded = read_message(value)
        seen: list[Item] = []
        for entry in decoded:
            seen.append(entry)
            if entry[0] is not None:
                break
        key = first_service(seen)
        items = chain(seen, decoded)
    return keyed(partition, key, forwarded, owner, items)


def keyed(partition: int, key: bytes | None, forwarded: bool,
          owner: Callable[[bytes], int] | None, items: Iterator[Item] | None = None,
          ) -> Route:
    """The route of a message whose judging key is already known."""
    owned = forwarded or not key or owner is None or owner(key) == partition
    return Route(partition + (FORWARDED if forwarded else 0), key,
                 service_of_key(key) if key else None, owned, items)
