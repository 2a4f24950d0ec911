"""The threaded pointer reader, for synchronous servers (same protocol as PointerReader)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

from rollguard.actions.reader_core import (
    BACKOFF_S,
    OnChange,
    OnStale,
    ReaderCore,
    log,
    refresh_delay,
)
from rollguard.base.errors import ServiceUnavailable, UnknownService

if TYPE_CHECKING:
    import redis

    from rollguard.actions.connect import SyncClient

POLL_S = 0.5  # longest the thread blocks, so expiry and stop are noticed promptly


class SyncPointerReader(ReaderCore):
    """The threaded reader for synchronous servers: a daemon thread keeps the copy current.

    ``on_change`` runs in that thread. ``resolve()`` may be called from any thread: each
    change swaps in a whole new routing table, so a request sees one epoch or the next.
    """

    def __init__(
        self,
        client_or_url: SyncClient | str | None,
        service: str,
        on_change: OnChange | None = None,
        *,
        on_stale: OnStale | None = None,
        refresh_interval_s: float = 5.0,
        max_stale_s: float | None = None,
        prefix: str | None = None,
    ) -> None:
        from rollguard.actions import connect

        self.client: SyncClient
        self.client, self._owns_client = connect.attach(client_or_url, connect.redis_client)
        super().__init__(service, on_change, on_stale, refresh_interval_s, max_stale_s, prefix,
                         connect.database_of(self.client))
        self.address = connect.describe(self.client)
        self.replica_reads = connect.reads_replicas(self.client)
        self._network_errors: tuple[type[Exception], ...] = connect.TRANSIENT_ERRORS
        self._pubsub: redis.client.PubSub | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from rollguard.actions.connect import PERMISSION_ERRORS, refused_credentials

        try:
            self._subscribe()
            self._reread()
        except (*self._network_errors, *PERMISSION_ERRORS) as exc:
            self._close_pubsub()
            refused = refused_credentials(exc, self.address)
            raise refused or ServiceUnavailable("Redis", self.address, str(exc)) from exc
        if self._state is None:
            self._close_pubsub()
            raise UnknownService(f"{self.service} has no version pointer (nothing promoted)")
        self._thread = threading.Thread(
            target=self._run, name=f"pointer-reader-{self.service}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_pubsub()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> SyncPointerReader:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _subscribe(self) -> None:
        self._pubsub = self.client.pubsub()
        self._pubsub.subscribe(self.keys.changes)

    def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            with contextlib.suppress(*self._network_errors):
                pubsub.close()

    def _reread(self) -> None:
        self._accept(self.client.get(self.keys.pointer), authoritative=True)
        self._confirmed()

    def _run(self) -> None:
        backoff = BACKOFF_S[0]
        next_refresh = time.monotonic() + refresh_delay(self.refresh_interval_s)
        while not self._stop.is_set():
            try:
                if self._pubsub is None:
                    self._subscribe()
                assert self._pubsub is not None
                message = self._pubsub.get_message(timeout=POLL_S)
                if message is not None and message["type"] == "subscribe":
                    self._reread()
                    backoff = BACKOFF_S[0]
                elif message is not None and message["type"] == "message":
                    before = self._state
                    self._accept(message["data"], authoritative=False)
                    if self._state is not before:  # a message hints, Redis decides
                        self._accept(self.client.get(self.keys.pointer), authoritative=True)
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + refresh_delay(self.refresh_interval_s)
                    self._accept(self.client.get(self.keys.pointer), authoritative=True)
            except self._network_errors as exc:
                self._lost(exc)
                self._close_pubsub()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_S[1])
            except ValueError as exc:  # one line: a format this reader cannot read
                log.warning("%s: ignoring an undecodable pointer: %s", self.service, exc)
            self._check_expiry()
