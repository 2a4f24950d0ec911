"""What both pointer readers share: the in-process copy, routing and staleness."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

from rollguard.actions.keys import ServiceKeys
from rollguard.actions.routing import Route, Router
from rollguard.actions.state import PointerState, decode
from rollguard.base.errors import ServiceUnavailable, UnknownService

log = logging.getLogger("rollguard.reader")
# The readers import rollguard.actions.connect (redis-py) when the first one is made, not at
# import: redis-py takes about 100 ms to load, which `from rollguard import PointerReader`
# need not cost a serving process (bench/client_footprint.py).

OnChange = Callable[[PointerState], Any]
OnStale = Callable[[BaseException], Any]
BACKOFF_S = (0.05, 2.0)  # first and longest wait between reconnection attempts
# Each periodic re-read waits a random 80-100 % of refresh_interval_s: readers started together
# (a deploy, a process with many readers) drift apart instead of reading in step, and the
# configured interval stays the longest gap, as section 4 of the protocol promises.
REFRESH_JITTER = 0.2


def refresh_delay(interval_s: float) -> float:
    """The wait before the next periodic re-read: at most ``interval_s``, at least 80 % of it."""
    return interval_s * (1.0 - REFRESH_JITTER * random.random())

# Decoded pointer values, shared by every reader in the process and keyed by the exact bytes:
# readers of one service all receive the same bytes for a change (the message, then the same
# value from a GET), so one decode and one routing table serve all of them. Sharing is safe as
# both are immutable (treat the component dicts of a PointerState as read-only, as before). A
# few dozen entries cover every service a process follows; the table is emptied when full.
DECODED_MAX = 64
_decoded: dict[bytes | str, tuple[PointerState, Router]] = {}


def decoded(raw: bytes | str) -> tuple[PointerState, Router]:
    """The state and routing table of a pointer value (ValueError if it is not one)."""
    hit = _decoded.get(raw)
    if hit is None:
        state = decode(raw)
        hit = (state, Router(state))
        if len(_decoded) >= DECODED_MAX:
            _decoded.clear()
        _decoded[raw] = hit
    return hit


class ReaderCore:
    """State, routing and staleness shared by the asyncio and the threaded reader."""

    def __init__(
        self,
        service: str,
        on_change: OnChange | None,
        on_stale: OnStale | None,
        refresh_interval_s: float,
        max_stale_s: float | None,
        prefix: str | None,
        db: int,
    ) -> None:
        if refresh_interval_s <= 0:
            raise ValueError(f"refresh_interval_s must be > 0: {refresh_interval_s}")
        self.service = service
        # The channel names the database: a reader never applies another database's change.
        self.keys = ServiceKeys.of(service, prefix, db)
        self.on_change = on_change
        self.on_stale = on_stale
        self.refresh_interval_s = refresh_interval_s
        self.max_stale_s = max_stale_s
        self._state: PointerState | None = None
        self._router: Router | None = None
        self._stale_since: float | None = None
        self._expired = False
        self.address = ""
        # True when GETs may be answered by a replica (a cluster client reading from
        # replicas): a lagging replica's older epoch must never replace a newer copy.
        self.replica_reads = False

    @property
    def state(self) -> PointerState:
        """The pointer as last read or received."""
        if self._state is None:
            raise UnknownService(f"reader for {self.service} has not loaded the pointer")
        return self._state

    @property
    def fresh(self) -> bool:
        """True while the copy is confirmed by a live subscription."""
        return self._stale_since is None

    def resolve(self, key: str, cohort: str | None = None) -> Route:
        """``(release, component versions)`` serving the request or user ``key``; no I/O."""
        router = self._router
        if router is None or self._expired:
            raise self._unavailable()
        return router.resolve(key, cohort)

    def _unavailable(self) -> ServiceUnavailable:
        if self._router is None:
            return ServiceUnavailable("Redis", self.address, f"{self.service}: pointer not loaded")
        age = time.monotonic() - (self._stale_since or time.monotonic())
        return ServiceUnavailable(
            "Redis", self.address, f"{self.service}: pointer unconfirmed for {age:.1f} s"
        )

    def _accept(self, raw: bytes | str | None, authoritative: bool) -> Any:
        """Take a pointer value; returns the on_change result (maybe awaitable) or None.

        A published value applies only if newer (messages can be overtaken by a re-read); a
        read value is the server's truth and applies whenever its epoch differs, unless it may
        come from a replica (``replica_reads``): then it too applies only if newer.
        """
        authoritative = authoritative and not self.replica_reads
        if raw is None:
            if authoritative and self._state is not None:
                log.error("%s: the pointer disappeared from Redis; keeping epoch %s",
                          self.service, self._state.epoch)
            return None
        state, router = decoded(raw)
        current = self._state
        if current is not None:
            if state is current:
                return None  # the same value again (a re-read, or another reader's decode)
            if state.epoch == current.epoch or (state.epoch < current.epoch and not authoritative):
                return None
            if state.epoch < current.epoch:
                log.warning("%s: pointer epoch went back from %s to %s (restored Redis?)",
                            self.service, current.epoch, state.epoch)
        self._router = router
        self._state = state
        if self.on_change is None:
            return None
        try:
            return self.on_change(state)
        except Exception:
            log.exception("%s: on_change callback failed at epoch %s", self.service, state.epoch)
            return None

    def _confirmed(self) -> None:
        if self._stale_since is not None:
            log.info("%s: pointer confirmed again at epoch %s", self.service,
                     self._state.epoch if self._state else None)
        self._stale_since = None
        self._expired = False

    def _lost(self, exc: BaseException) -> None:
        if self._stale_since is None:
            self._stale_since = time.monotonic()
            log.warning("%s: lost Redis at %s (%s); serving epoch %s until it is confirmed",
                        self.service, self.address, exc,
                        self._state.epoch if self._state else None)
            if self.on_stale is not None:
                try:
                    self.on_stale(exc)
                except Exception:
                    log.exception("%s: on_stale callback failed", self.service)

    def _check_expiry(self) -> None:
        since, limit = self._stale_since, self.max_stale_s
        if since is not None and limit is not None and time.monotonic() - since > limit:
            if not self._expired:
                log.error("%s: pointer unconfirmed for over %s s: resolve() now raises",
                          self.service, limit)
            self._expired = True
