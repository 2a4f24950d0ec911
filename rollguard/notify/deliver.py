"""Posting to the destinations over HTTP (aiohttp), one sender task per destination, each
draining its own :class:`~rollguard.notify.outbox.Outbox`: a slow or dead receiver delays
only itself, and never the stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import orjson

from rollguard.notify import formats
from rollguard.notify.outbox import Item, Outbox
from rollguard.notify.settings import NotifySettings, Redactor

log = logging.getLogger("rollguard.notify")

Request = tuple[bytes, dict[str, str]]  # body, headers
TIMEOUT_S = 10.0
JSON = {"Content-Type": "application/json"}


class Rejected(Exception):
    """The receiver refused the request for good (a 4xx other than 429)."""


@dataclass
class Destination:
    """Where to post (``url``, never logged), how to render an item into requests, and the
    queue of what waits to go there."""

    name: str
    url: str
    render: Callable[[Item, float], list[Request]]
    outbox: Outbox = field(default_factory=Outbox)
    pages: bool = False  # it pages people: drills send it nothing (PagerDuty)


def destinations(settings: NotifySettings) -> list[Destination]:
    """The configured destinations, each with its queue and retry timing."""
    web = settings.web_url

    def slack(item: Item, now: float) -> list[Request]:
        return [(orjson.dumps(formats.slack(item, web)), JSON)]

    def webhook(item: Item, now: float) -> list[Request]:
        body = orjson.dumps(formats.webhook(item, web, now))
        return [(body, {**JSON, formats.SIGNATURE_HEADER:
                        formats.signature(settings.webhook_key, body)})]

    def pagerduty(item: Item, now: float) -> list[Request]:
        return [(orjson.dumps(event), JSON)
                for event in formats.pagerduty(item, settings.pagerduty_key, web)]

    chosen = [("slack", settings.slack_url, slack), ("webhook", settings.webhook_url, webhook),
              ("pagerduty", settings.pagerduty_url if settings.pagerduty_key else "", pagerduty)]
    return [Destination(name, url, render, Outbox(base_s=max(settings.retry_s, 0.05),
                                                  summarise_after_s=settings.summarise_s),
                        pages=name == "pagerduty")
            for name, url, render in chosen if url]


class Sender:
    """Sends one destination's queue in order; retries with backoff; counts in its stats."""

    def __init__(self, destination: Destination, session: aiohttp.ClientSession,
                 redactor: Redactor, clock: Callable[[], float] = time.time) -> None:
        self.destination, self.session, self.redactor, self.clock = (
            destination, session, redactor, clock)
        self.wake = asyncio.Event()
        self._head: Item | None = None
        self._done = 0  # requests of the head item that arrived

    async def run(self) -> None:
        box = self.destination.outbox
        while True:
            now = self.clock()
            item = box.ready(now)
            if item is None:
                await self._sleep(box.next_attempt_at(), now)
                continue
            if item is not self._head:  # a new head, or the backlog became a digest
                self._head, self._done = item, 0
            try:
                for body, headers in self.destination.render(item, now)[self._done:]:
                    await self._post(body, headers)
                    self._done += 1  # a retry resends only what did not arrive
            except Rejected as exc:
                box.rejected(self.clock())
                log.error("notify: %s refused a message for good (%s); dropped",
                          self.destination.name, exc)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                box.failed(self.clock(), spread=random.random())
                log.warning("notify: delivery to %s failed (%s); retrying in %.1f s, %d queued",
                            self.destination.name, self._describe(exc),
                            (box.next_attempt_at() or now) - self.clock(), len(box))
            else:
                box.delivered(self.clock())

    async def _sleep(self, until: float | None, now: float) -> None:
        self.wake.clear()
        timeout = None if until is None else max(0.0, until - now)
        with contextlib.suppress(TimeoutError):  # woken by new work, or the retry is due
            await asyncio.wait_for(self.wake.wait(), timeout)

    async def _post(self, body: bytes, headers: dict[str, str]) -> None:
        async with self.session.post(self.destination.url, data=body, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as reply:
            if reply.status < 300:
                return
            if reply.status == 429 or reply.status >= 500:
                raise aiohttp.ClientResponseError(
                    reply.request_info, (), status=reply.status, message=reply.reason or "")
            raise Rejected(f"HTTP {reply.status}")

    def _describe(self, exc: BaseException) -> str:
        """What went wrong, without the URL: aiohttp's messages often contain it."""
        if isinstance(exc, aiohttp.ClientResponseError):
            return f"HTTP {exc.status}"
        return self.redactor.clean(f"{type(exc).__name__}: {exc}")
