"""A short-lived cache of version pointers, so the worker reads Redis once a second at most
per service."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from actions.pointer import PointerState, PointerStore
from rollguard.errors import UnknownService

# A manual flip reaches the monitor within this long; a rollback we issue invalidates at once.
TTL_S = 1.0


@dataclass
class PointerCache:
    store: PointerStore
    ttl_s: float = TTL_S
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, tuple[float, PointerState | None]] = field(default_factory=dict)

    async def get(self, service: str) -> PointerState | None:
        """The service's pointer, or None when the service has none registered."""
        now = self.clock()
        cached = self._entries.get(service)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        try:
            state: PointerState | None = await self.store.read(service)
        except UnknownService:
            state = None
        self._entries[service] = (now, state)
        return state

    def invalidate(self, service: str) -> None:
        self._entries.pop(service, None)
