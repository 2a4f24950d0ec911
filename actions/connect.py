"""Redis clients with errors that name the server address instead of hanging."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from rollguard.config import redis_url
from rollguard.errors import ServiceUnavailable

# Fail fast when nothing listens: a dead server must produce an error, not a hang.
SOCKET_TIMEOUT_S = 5.0


def redis_client(url: str | None = None) -> redis.Redis:
    """A synchronous client for ``url`` (default ``REDIS_URL``)."""
    return redis.Redis.from_url(
        url or redis_url(), socket_connect_timeout=SOCKET_TIMEOUT_S, socket_timeout=SOCKET_TIMEOUT_S
    )


def async_redis_client(url: str | None = None) -> aioredis.Redis:
    """An asyncio client for ``url`` (default ``REDIS_URL``)."""
    return aioredis.Redis.from_url(
        url or redis_url(), socket_connect_timeout=SOCKET_TIMEOUT_S, socket_timeout=SOCKET_TIMEOUT_S
    )


def unavailable(exc: BaseException, url: str | None = None) -> ServiceUnavailable:
    """Translate a redis-py connection error into ours, naming the address."""
    return ServiceUnavailable("Redis", url or redis_url(), str(exc) or type(exc).__name__)


async def ping(client: aioredis.Redis, url: str | None = None) -> None:
    """Raise ServiceUnavailable unless the server answers PING."""
    try:
        await client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise unavailable(exc, url) from exc
