"""Where the status page's data come from: Redis (pointers, history, approvals), the audit
topic (followed from its start, the newest records per service kept) and the worker's
``/metrics`` (scraped for the charts). The page model itself is :mod:`rollguard.web.model`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from secrets import token_bytes
from typing import Any

import aiohttp
import orjson

from rollguard.actions.approvals import PendingCommands
from rollguard.actions.connect import PERMISSION_ERRORS, TRANSIENT_ERRORS, AsyncClient, unavailable
from rollguard.actions.keys import ServiceKeys, pointer_pattern, service_of_pointer_key
from rollguard.actions.pointer import PointerStore
from rollguard.actions.state import PointerState
from rollguard.base.config import KafkaSecurity
from rollguard.base.errors import RollguardError
from rollguard.base.redact import redact_text
from rollguard.streams.connect import consumer
from rollguard.web.model import service_page, service_row
from rollguard.web.series import SeriesBook, read_levels

log = logging.getLogger("rollguard.web")
RECORDS_KEPT = 500  # audit records per service
HISTORY_SHOWN = 50
SERVICES_CACHED_S = 5.0  # a SCAN of the keyspace at most this often
RETRY_S = 2.0


class AuditLog:
    """The audit topic, read from its start and followed; the newest records per service."""

    def __init__(self, topic: str, bootstrap: str, kept: int = RECORDS_KEPT) -> None:
        self.topic, self.bootstrap, self.kept = topic, bootstrap, kept
        self.by_service: dict[str, deque[dict[str, Any]]] = {}
        self.problem = ""

    def take(self, value: bytes | None) -> None:
        try:
            record = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            return
        if isinstance(record, dict) and isinstance(record.get("service"), str):
            kept = self.by_service.setdefault(record["service"], deque(maxlen=self.kept))
            kept.append(record)

    def records(self, service: str) -> list[dict[str, Any]]:
        return list(self.by_service.get(service, ()))

    async def follow(self) -> None:
        """Read until cancelled; after a failure, read the topic again from its start."""
        while True:
            try:
                async with consumer(self.topic, bootstrap=self.bootstrap, group_id=None,
                                    auto_offset_reset="earliest") as source:
                    self.by_service.clear()
                    self.problem = ""
                    async for message in source:
                        self.take(message.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the page says so and keeps what Redis tells
                password = KafkaSecurity.from_env().password
                self.problem = redact_text(f"audit topic {self.topic}: "
                                           f"{type(exc).__name__}: {exc}", [password])
                log.warning("web: %s; reading again in %.0f s", self.problem, RETRY_S)
                await asyncio.sleep(RETRY_S)


class MetricsScraper:
    """Scrapes the workers' ``/metrics`` into a :class:`SeriesBook` (each worker reports the
    services of the partitions it holds, so every worker of the group is scraped)."""

    def __init__(self, urls: str | tuple[str, ...], every_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.urls = (urls,) if isinstance(urls, str) else urls
        self.urls = tuple(u for u in self.urls if u)
        self.every_s, self.clock = every_s, clock
        self.book = SeriesBook()
        self.problem = "" if self.urls else "no metrics endpoint configured: no charts"

    async def follow(self) -> None:
        if not self.urls:
            return
        timeout = aiohttp.ClientTimeout(total=max(self.every_s, 1.0))
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                problems = []
                for url in self.urls:
                    try:
                        async with session.get(url) as response:
                            response.raise_for_status()
                            text = await response.text()
                        self.book.add(read_levels(text), self.clock())
                    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                        problems.append(redact_text(f"worker metrics at {url}: "
                                                    f"{type(exc).__name__}"))
                self.problem = "; ".join(problems)
                await asyncio.sleep(self.every_s)


class StatusSource:
    """Answers the page's two questions: every service, and one service in full."""

    def __init__(self, client: AsyncClient, audit: AuditLog, scraper: MetricsScraper,
                 services: tuple[str, ...] = (), clock: Callable[[], float] = time.time,
                 ) -> None:
        self.store = PointerStore(client, token_bytes(32))  # reads only: it signs nothing
        self.pending = PendingCommands(client)
        self.audit, self.scraper, self.fixed, self.clock = audit, scraper, services, clock
        self._listed: tuple[float, list[str]] = (-SERVICES_CACHED_S, [])

    async def services(self) -> list[str]:
        if self.fixed:
            return list(self.fixed)
        now = time.monotonic()
        if now - self._listed[0] >= SERVICES_CACHED_S:
            prefix = self.store.prefix
            found = {service_of_pointer_key(k, prefix) async for k in
                     self.store.client.scan_iter(match=pointer_pattern(prefix), count=1000)}
            self._listed = (now, sorted(s for s in found if s))
        return self._listed[1]

    async def overview(self) -> dict[str, Any]:
        names = await self.services()
        pointers = await self.store.read_many(names) if names else {}
        now = self.clock()
        waiting = await self._pending_many(names)
        rows = [service_row(name, pointers.get(name), self.audit.records(name),
                            waiting[name], now) for name in names]
        return {"now": now, "services": rows, "problems": self.problems()}

    async def _pending_many(self, names: list[str]) -> dict[str, dict[str, bytes]]:
        """The commands waiting for approval of every service in one round trip (one
        HGETALL each would cost the overview of 400 services about 0.1 s)."""
        prefix = self.store.prefix
        try:
            async with self.store.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(ServiceKeys.of(name, prefix).pending)
                replies = await pipe.execute()
        except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
            raise unavailable(exc, self.store.address) from exc
        return {name: {_text(k): v for k, v in (found or {}).items()}
                for name, found in zip(names, replies, strict=True)}

    async def page(self, service: str) -> dict[str, Any]:
        pointer: PointerState | None = (await self.store.read_many([service]))[service]
        history = await self.store.history(service, count=HISTORY_SHOWN)
        pending = await self.pending.list(service)
        return {**service_page(service, pointer, history, self.audit.records(service), pending,
                               self.scraper.book.of(service), self.clock()),
                "problems": self.problems()}

    def problems(self) -> list[str]:
        return [p for p in (self.audit.problem, self.scraper.problem) if p]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@contextlib.asynccontextmanager
async def following(audit: AuditLog, scraper: MetricsScraper) -> Any:
    """Follow the audit topic and scrape the metrics while the block runs."""
    tasks = [asyncio.create_task(audit.follow()), asyncio.create_task(scraper.follow())]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, RollguardError):
            await asyncio.gather(*tasks)
