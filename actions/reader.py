"""Pointer readers for serving processes: an in-process copy kept current by pub/sub.

``resolve()`` answers from memory. The copy is loaded at start, replaced by every change
published on the service's channel, re-read whenever the subscription is (re)established (a
reconnect may have missed messages: pub/sub does not replay), and re-read every
``refresh_interval_s`` as a safety net. While Redis cannot be reached the reader says so
(``fresh`` is False, ``on_stale`` is called, a warning is logged); with ``max_stale_s`` set,
``resolve()`` raises ServiceUnavailable once the copy has been unconfirmed that long.

A server that follows many services (hundreds of readers) should call ``gc.freeze()`` once its
readers have started: a full collection of such a process took 20-90 ms in the middle of flips
on a 2-core machine (bench/RESULTS-actions.md), and frozen start-up objects are never walked.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from rollguard.actions.reader_core import (
    BACKOFF_S,
    OnChange,
    OnStale,
    ReaderCore,
    log,
    refresh_delay,
)
from rollguard.actions.subscriber import ChannelSubscriber, ReplyError, subscribe
from rollguard.actions.sync_reader import SyncPointerReader
from rollguard.base.errors import ServiceUnavailable, UnknownService

if TYPE_CHECKING:
    from rollguard.actions.connect import AsyncClient

__all__ = ["PointerReader", "SyncPointerReader"]

SUBSCRIBE_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0  # stop() never waits longer than this for its tasks to end


class PointerReader(ReaderCore):
    """The asyncio reader: ``await start()``, then ``resolve()``; ``await stop()`` at shutdown.

    Changes arrive on a dedicated subscriber connection (``actions/subscriber.py``) and are
    applied inside the event loop's read callback. ``on_change(state)`` may be a function (run
    right there: keep it quick) or a coroutine function (run in order by one task). Readers in
    one process that receive the same pointer value get the same (frozen) state object: treat
    its component dicts as read-only.
    """

    def __init__(
        self,
        client_or_url: AsyncClient | str | None,
        service: str,
        on_change: OnChange | None = None,
        *,
        on_stale: OnStale | None = None,
        refresh_interval_s: float = 5.0,
        max_stale_s: float | None = None,
        prefix: str | None = None,
    ) -> None:
        from rollguard.actions import connect

        self.client: AsyncClient
        self.client, self._owns_client = connect.attach(client_or_url,
                                                        connect.async_redis_client)
        super().__init__(service, on_change, on_stale, refresh_interval_s, max_stale_s, prefix,
                         connect.database_of(self.client))
        self.address = connect.describe(self.client)
        self.replica_reads = connect.reads_replicas(self.client)
        self._network_errors: tuple[type[Exception], ...] = connect.TRANSIENT_ERRORS
        self._subscribe_errors: tuple[type[Exception], ...] = (
            TimeoutError, ReplyError, *connect.TRANSIENT_ERRORS)
        self._subscriber: ChannelSubscriber | None = None
        self._messages = 0  # counts applied messages, so a slow re-read cannot undo one
        self._confirming: set[asyncio.Task[None]] = set()  # reads confirming a message
        self._callbacks: asyncio.Queue[Awaitable[Any]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        # Started with the first coroutine on_change returns: a plain function needs no task,
        # and a process with hundreds of readers keeps fewer objects for its collector to walk.
        self._callback_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe, then load the pointer (in this order, so no change can slip between)."""
        try:
            self._subscriber = await self._subscribe()
            await self._reread()
        except self._subscribe_errors as exc:
            from rollguard.actions.connect import refused_credentials

            self._close_subscriber()
            refused = refused_credentials(exc, self.address)
            raise refused or ServiceUnavailable("Redis", self.address, str(exc)) from exc
        if self._state is None:
            self._close_subscriber()
            raise UnknownService(f"{self.service} has no version pointer (nothing promoted)")
        self._tasks = [
            asyncio.create_task(self._watch(), name=f"pointer-watch-{self.service}"),
            asyncio.create_task(self._refresh(), name=f"pointer-refresh-{self.service}"),
        ]

    async def stop(self) -> None:
        tasks = self._tasks + ([self._callback_task] if self._callback_task else [])
        tasks += list(self._confirming)
        for task in tasks:
            task.cancel()
        if tasks:
            # A server's shutdown must not hang on a reader: a re-read cancelled inside the
            # Redis client was once seen never to finish (1 run in about 15 of 250 readers
            # per process). Wait a bounded time, then drop the connections anyway.
            _, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
            if stuck:
                log.warning("%s: %d reader task(s) did not stop within %.0f s; abandoned",
                            self.service, len(stuck), STOP_TIMEOUT_S)
        self._tasks = []
        self._callback_task = None
        self._close_subscriber()
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> PointerReader:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _subscribe(self) -> ChannelSubscriber:
        """A new subscriber connection, returned once Redis confirmed the subscription."""
        confirmed = asyncio.get_running_loop().create_future()

        def on_subscribed() -> None:
            if not confirmed.done():
                confirmed.set_result(None)

        from rollguard.actions import connect

        if connect.is_cluster(self.client):
            await self.client.initialize()  # learns the nodes
        subscriber = await subscribe(
            connect.subscriber_targets(self.client, self.keys.pointer), self.keys.changes,
            self._on_message, on_subscribed, timeout=SUBSCRIBE_TIMEOUT_S,
        )  # fmt: skip
        await asyncio.wait(
            (confirmed, subscriber.closed), timeout=SUBSCRIBE_TIMEOUT_S,
            return_when=asyncio.FIRST_COMPLETED,
        )  # fmt: skip
        if not confirmed.done():
            subscriber.close()
            cause = subscriber.closed.result() if subscriber.closed.done() else None
            raise cause or TimeoutError("no SUBSCRIBE confirmation")
        return subscriber

    def _close_subscriber(self) -> None:
        if self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None

    def _on_message(self, data: bytes) -> None:
        before = self._state
        try:
            result = self._accept(data, authoritative=False)
        except ValueError as exc:  # one line: a pointer of a format this reader cannot read
            log.warning("%s: ignoring an undecodable pointer: %s", self.service, exc)
            return
        self._messages += 1
        if result is not None:
            self._defer(result)
        if self._state is not before:
            # A message hints, the pointer in Redis decides: read it back at once, so that a
            # forged or corrupted message (a far higher epoch) is undone within a round trip.
            self._confirming.add(asyncio.get_running_loop().create_task(self._confirm()))

    async def _confirm(self) -> None:
        errors: tuple[type[Exception], ...] = (*self._network_errors, ValueError)
        try:
            await self._reread()
        except errors as exc:  # the periodic re-read and the reconnection carry on
            log.debug("%s: confirming read failed: %s", self.service, exc)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._confirming.discard(task)

    async def _reread(self) -> None:
        seen = self._messages
        raw = await self.client.get(self.keys.pointer)
        # A message applied while the GET was in flight may be newer than what it returned.
        result = self._accept(raw, authoritative=self._messages == seen)
        if result is not None:
            self._defer(result)
        self._confirmed()

    def _defer(self, result: Any) -> None:
        """Queue what a coroutine on_change returned; one task runs them in order."""
        if not inspect.isawaitable(result):
            return
        self._callbacks.put_nowait(result)
        if self._callback_task is None or self._callback_task.done():
            self._callback_task = asyncio.get_running_loop().create_task(
                self._run_callbacks(), name=f"pointer-callbacks-{self.service}"
            )

    async def _run_callbacks(self) -> None:
        while True:
            pending = await self._callbacks.get()
            try:
                await pending
            except Exception:
                log.exception("%s: on_change coroutine failed", self.service)

    async def _watch(self) -> None:
        """Wait for the subscriber connection to end; reconnect, re-read, repeat."""
        while True:
            assert self._subscriber is not None
            cause = await self._subscriber.closed
            self._lost(cause or ConnectionResetError("subscriber closed"))
            self._subscriber = None
            backoff = BACKOFF_S[0]
            while self._subscriber is None:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_S[1])
                try:
                    subscriber = await self._subscribe()
                except self._subscribe_errors as exc:
                    self._check_expiry()
                    log.debug("%s: reconnect failed: %s", self.service, exc)
                    continue
                try:
                    await self._reread()
                except self._network_errors as exc:
                    subscriber.close()
                    log.debug("%s: re-read failed: %s", self.service, exc)
                    continue
                self._subscriber = subscriber

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(refresh_delay(self.refresh_interval_s))
            if self._subscriber is None:
                self._check_expiry()
                continue  # _watch is reconnecting and re-reads once it is back
            try:
                await self._reread()
            except self._network_errors as exc:
                self._lost(exc)
            except ValueError as exc:
                log.warning("%s: ignoring an undecodable pointer: %s", self.service, exc)
            self._check_expiry()
