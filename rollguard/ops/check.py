"""A smoke check of the running servers: a Kafka round trip and a Redis round trip."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from rollguard.actions.connect import (
    PERMISSION_ERRORS,
    TRANSIENT_ERRORS,
    async_redis_client,
    ping,
    unavailable,
)
from rollguard.actions.keys import check_key
from rollguard.base.config import kafka_bootstrap, redis_url
from rollguard.base.redact import redact
from rollguard.streams.connect import consumer, ensure_topics, producer


@dataclass(frozen=True)
class CheckResult:
    what: str
    seconds: float
    detail: str

    def __str__(self) -> str:
        return f"{self.what}: ok in {self.seconds * 1000:.0f} ms ({self.detail})"


async def check_kafka(bootstrap: str | None = None, timeout: float = 30.0) -> CheckResult:
    """Create a topic, produce one message and read it back in a consumer group."""
    start = time.perf_counter()
    topic = f"rollguard-check-{uuid.uuid4().hex[:8]}"
    token = uuid.uuid4().hex.encode()
    await ensure_topics({topic: 1}, bootstrap)
    async with producer(bootstrap) as out:
        await out.send_and_wait(topic, token, key=b"check")
    async with consumer(
        topic, bootstrap=bootstrap, group_id=f"{topic}-group", auto_offset_reset="earliest"
    ) as into:
        message = await asyncio.wait_for(into.getone(), timeout)
        await into.commit()
    if message.value != token:
        raise AssertionError(f"read back {message.value!r}, expected {token!r}")
    address = bootstrap or kafka_bootstrap()
    return CheckResult("kafka", time.perf_counter() - start, f"{address}, topic {topic}")


async def check_redis(url: str | None = None, timeout: float = 5.0) -> CheckResult:
    """SET/GET a key and PUBLISH a message to a subscriber."""
    start = time.perf_counter()
    client = async_redis_client(url)
    key = check_key(uuid.uuid4().hex[:8])
    try:
        await ping(client, url)
        await client.set(key, b"ok", ex=60)
        if await client.get(key) != b"ok":
            raise AssertionError("GET did not return what SET wrote")
        pubsub = client.pubsub()
        await pubsub.subscribe(key)
        await client.publish(key, b"hello")
        deadline = time.monotonic() + timeout
        received = None
        while received is None and time.monotonic() < deadline:
            received = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        await pubsub.aclose()
        if received is None or received["data"] != b"hello":
            raise AssertionError("the subscriber did not receive the published message")
        await client.delete(key)
    except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
        raise unavailable(exc, url) from exc
    finally:
        await client.aclose()
    return CheckResult("redis", time.perf_counter() - start, redact(url or redis_url()))


async def check_all() -> list[CheckResult]:
    return [await check_redis(), await check_kafka()]
