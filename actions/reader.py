"""Pointer readers for serving processes: an in-process copy kept current by pub/sub.

``resolve()`` answers from memory. The copy is loaded at start, replaced by every change
published on the service's channel, re-read whenever the subscription is (re)established (a
reconnect may have missed messages: pub/sub does not replay), and re-read every
``refresh_interval_s`` as a safety net. While Redis cannot be reached the reader says so
(``fresh`` is False, ``on_stale`` is called, a warning is logged); with ``max_stale_s`` set,
``resolve()`` raises ServiceUnavailable once the copy has been unconfirmed that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import SSLConnection

from actions.connect import async_redis_client, redis_client
from actions.keys import PREFIX, ServiceKeys
from actions.routing import Route, Router
from actions.state import PointerState, decode
from actions.subscriber import ChannelSubscriber, ReplyError, subscribe
from rollguard.errors import ServiceUnavailable, UnknownService

log = logging.getLogger("rollguard.reader")

OnChange = Callable[[PointerState], Any]
OnStale = Callable[[BaseException], Any]
NETWORK_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
BACKOFF_S = (0.05, 2.0)  # first and longest wait between reconnection attempts
POLL_S = 0.5  # longest a loop blocks, so expiry and stop are noticed promptly
SUBSCRIBE_TIMEOUT_S = 5.0


class _ReaderCore:
    """State, routing and staleness shared by the asyncio and the threaded reader."""

    def __init__(
        self,
        service: str,
        on_change: OnChange | None,
        on_stale: OnStale | None,
        refresh_interval_s: float,
        max_stale_s: float | None,
        prefix: str,
    ) -> None:
        if refresh_interval_s <= 0:
            raise ValueError(f"refresh_interval_s must be > 0: {refresh_interval_s}")
        self.service = service
        self.keys = ServiceKeys.of(service, prefix)
        self.on_change = on_change
        self.on_stale = on_stale
        self.refresh_interval_s = refresh_interval_s
        self.max_stale_s = max_stale_s
        self._state: PointerState | None = None
        self._router: Router | None = None
        self._stale_since: float | None = None
        self._expired = False
        self.address = ""

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
        read value is the server's truth and applies whenever its epoch differs.
        """
        if raw is None:
            if authoritative and self._state is not None:
                log.error("%s: the pointer disappeared from Redis; keeping epoch %s",
                          self.service, self._state.epoch)
            return None
        state = decode(raw)
        current = self._state
        if current is not None:
            if state.epoch == current.epoch or (state.epoch < current.epoch and not authoritative):
                return None
            if state.epoch < current.epoch:
                log.warning("%s: pointer epoch went back from %s to %s (restored Redis?)",
                            self.service, current.epoch, state.epoch)
        self._router = Router(state)
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


def _address(kwargs: dict[str, Any]) -> str:
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


class PointerReader(_ReaderCore):
    """The asyncio reader: ``await start()``, then ``resolve()``; ``await stop()`` at shutdown.

    Changes arrive on a dedicated subscriber connection (``actions/subscriber.py``) and are
    applied inside the event loop's read callback. ``on_change(state)`` may be a function (run
    right there: keep it quick) or a coroutine function (run in order by one task).
    """

    def __init__(
        self,
        client_or_url: aioredis.Redis | str | None,
        service: str,
        on_change: OnChange | None = None,
        *,
        on_stale: OnStale | None = None,
        refresh_interval_s: float = 5.0,
        max_stale_s: float | None = None,
        prefix: str = PREFIX,
    ) -> None:
        super().__init__(service, on_change, on_stale, refresh_interval_s, max_stale_s, prefix)
        self._owns_client = not isinstance(client_or_url, aioredis.Redis)
        self.client = (
            client_or_url
            if isinstance(client_or_url, aioredis.Redis)
            else async_redis_client(client_or_url)
        )
        pool = self.client.connection_pool
        self.address = _address(pool.connection_kwargs)
        self._tls = issubclass(pool.connection_class, SSLConnection)
        self._subscriber: ChannelSubscriber | None = None
        self._messages = 0  # counts applied messages, so a slow re-read cannot undo one
        self._callbacks: asyncio.Queue[Awaitable[Any]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Subscribe, then load the pointer (in this order, so no change can slip between)."""
        try:
            self._subscriber = await self._subscribe()
            await self._reread()
        except (TimeoutError, *NETWORK_ERRORS, ReplyError) as exc:
            self._close_subscriber()
            raise ServiceUnavailable("Redis", self.address, str(exc)) from exc
        if self._state is None:
            self._close_subscriber()
            raise UnknownService(f"{self.service} has no version pointer (nothing promoted)")
        self._tasks = [
            asyncio.create_task(self._watch(), name=f"pointer-watch-{self.service}"),
            asyncio.create_task(self._refresh(), name=f"pointer-refresh-{self.service}"),
            asyncio.create_task(self._run_callbacks(), name=f"pointer-callbacks-{self.service}"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
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

        subscriber = await subscribe(
            self.client.connection_pool.connection_kwargs, self.keys.changes, self._on_message,
            on_subscribed, tls=self._tls, timeout=SUBSCRIBE_TIMEOUT_S,
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
        try:
            result = self._accept(data, authoritative=False)
        except ValueError:
            log.exception("%s: ignoring an undecodable pointer", self.service)
            return
        self._messages += 1
        if inspect.isawaitable(result):
            self._callbacks.put_nowait(result)

    async def _reread(self) -> None:
        seen = self._messages
        raw = await self.client.get(self.keys.pointer)
        # A message applied while the GET was in flight may be newer than what it returned.
        result = self._accept(raw, authoritative=self._messages == seen)
        if inspect.isawaitable(result):
            self._callbacks.put_nowait(result)
        self._confirmed()

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
                except (TimeoutError, *NETWORK_ERRORS, ReplyError) as exc:
                    self._check_expiry()
                    log.debug("%s: reconnect failed: %s", self.service, exc)
                    continue
                try:
                    await self._reread()
                except NETWORK_ERRORS as exc:
                    subscriber.close()
                    log.debug("%s: re-read failed: %s", self.service, exc)
                    continue
                self._subscriber = subscriber

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval_s)
            if self._subscriber is None:
                self._check_expiry()
                continue  # _watch is reconnecting and re-reads once it is back
            try:
                await self._reread()
            except NETWORK_ERRORS as exc:
                self._lost(exc)
            except ValueError:
                log.exception("%s: ignoring an undecodable pointer", self.service)
            self._check_expiry()


class SyncPointerReader(_ReaderCore):
    """The threaded reader for synchronous servers: a daemon thread keeps the copy current.

    ``on_change`` runs in that thread. ``resolve()`` may be called from any thread: each
    change swaps in a whole new routing table, so a request sees one epoch or the next.
    """

    def __init__(
        self,
        client_or_url: redis.Redis | str | None,
        service: str,
        on_change: OnChange | None = None,
        *,
        on_stale: OnStale | None = None,
        refresh_interval_s: float = 5.0,
        max_stale_s: float | None = None,
        prefix: str = PREFIX,
    ) -> None:
        super().__init__(service, on_change, on_stale, refresh_interval_s, max_stale_s, prefix)
        self._owns_client = not isinstance(client_or_url, redis.Redis)
        self.client = (
            client_or_url if isinstance(client_or_url, redis.Redis) else redis_client(client_or_url)
        )
        self.address = _address(self.client.connection_pool.connection_kwargs)
        self._pubsub: redis.client.PubSub | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._subscribe()
            self._reread()
        except NETWORK_ERRORS as exc:
            self._close_pubsub()
            raise ServiceUnavailable("Redis", self.address, str(exc)) from exc
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
            with contextlib.suppress(*NETWORK_ERRORS):
                pubsub.close()

    def _reread(self) -> None:
        self._accept(self.client.get(self.keys.pointer), authoritative=True)
        self._confirmed()

    def _run(self) -> None:
        backoff = BACKOFF_S[0]
        next_refresh = time.monotonic() + self.refresh_interval_s
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
                    self._accept(message["data"], authoritative=False)
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + self.refresh_interval_s
                    self._accept(self.client.get(self.keys.pointer), authoritative=True)
            except NETWORK_ERRORS as exc:
                self._lost(exc)
                self._close_pubsub()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_S[1])
            except ValueError:
                log.exception("%s: ignoring an undecodable pointer", self.service)
            self._check_expiry()
