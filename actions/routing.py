"""Which release serves a request: a stable hash of the request key, with no I/O at all.

A key's bucket is ``fmix32(crc32(service + "\\n" + key)) mod 10000``; the candidate serves buckets
below ``percent * 100``. The same key lands in the same bucket in every process and language,
so a user stays on one side, and cutting the share only moves users from candidate to active.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from types import MappingProxyType

from rollguard.actions.state import PointerState

BUCKETS = 10_000


def fmix32(h: int) -> int:
    """MurmurHash3's finaliser: spreads CRC-32's linear structure over all 32 bits.

    >>> fmix32(0), fmix32(1)
    (0, 1364076727)
    """
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def bucket(service: str, key: str) -> int:
    """The bucket (0..9999) of ``key`` for ``service``.

    >>> bucket("support-bot", "user-42")
    4673
    """
    return fmix32(zlib.crc32(f"{service}\n{key}".encode())) % BUCKETS


Route = tuple[str, Mapping[str, str]]


class Router:
    """Answers :meth:`resolve` from one pointer state; rebuilt on every change.

    >>> s = PointerState("bot", "v1", "v1", 2, {"model": "m1"}, candidate="v2",
    ...                  candidate_components={"model": "m2"}, percent=60.0, cohorts=("beta",))
    >>> r = Router(s)
    >>> r.resolve("user-42")[0], r.resolve("user-7")[0], r.resolve("user-7", cohort="beta")[0]
    ('v2', 'v1', 'v2')
    """

    __slots__ = ("_active", "_candidate", "_cohorts", "_salt", "_threshold")

    def __init__(self, state: PointerState) -> None:
        self._active: Route = (state.active, MappingProxyType(dict(state.active_components)))
        self._candidate: Route | None = None
        self._threshold = 0
        self._cohorts: frozenset[str] = frozenset()
        if state.candidate is not None:
            self._candidate = (
                state.candidate,
                MappingProxyType(dict(state.candidate_components or {})),
            )
            self._threshold = round(state.percent * BUCKETS / 100)
            self._cohorts = frozenset(state.cohorts)
        # CRC-32 is incremental: start from the service prefix once, not per request.
        self._salt = zlib.crc32(f"{state.service}\n".encode())

    def resolve(self, key: str, cohort: str | None = None) -> Route:
        """``(release name, component versions)`` for a request or user ``key``."""
        candidate = self._candidate
        if candidate is None:
            return self._active
        if cohort is not None and cohort in self._cohorts:
            return candidate
        h = zlib.crc32(key.encode(), self._salt)
        h ^= h >> 16
        h = (h * 0x85EBCA6B) & 0xFFFFFFFF
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & 0xFFFFFFFF
        if (h ^ (h >> 16)) % BUCKETS < self._threshold:
            return candidate
        return self._active
