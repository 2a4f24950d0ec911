"""Waiting out an unreachable Redis: the worker's events and commands wait in Kafka meanwhile."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rollguard.base.errors import ServiceUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_S = 1.0


async def until_available(what: str, call: Callable[[], Awaitable[T]],
                          on_wait: Callable[[ServiceUnavailable], Awaitable[Any]] | None = None,
                          ) -> T:
    """Retry while Redis is unreachable: events wait in Kafka meanwhile, none is lost.
    ``on_wait`` is awaited once, after the first failed attempt."""
    waiting = False
    while True:
        try:
            return await call()
        except ServiceUnavailable as exc:
            log.warning("%s waits for Redis: %s", what, exc)
            if on_wait is not None and not waiting:
                await on_wait(exc)
            waiting = True
            await asyncio.sleep(RETRY_S)
