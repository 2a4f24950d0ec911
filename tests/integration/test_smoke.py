"""The real broker and the real Redis answer: topics, consumer groups, pub/sub."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from rollguard.actions.connect import async_redis_client
from rollguard.base.errors import ServiceUnavailable
from rollguard.ops.check import check_kafka, check_redis
from rollguard.streams.connect import consumer, ensure_topics, producer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]


async def test_kafka_round_trip_through_a_consumer_group() -> None:
    """A message produced to a new topic is read back by a consumer group."""
    result = await check_kafka()
    assert result.what == "kafka"


async def test_consumer_group_resumes_after_its_committed_offset() -> None:
    """A second consumer in the same group starts after what the first one committed."""
    topic = f"test-smoke-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-g"
    await ensure_topics({topic: 2})
    async with producer() as out:
        for i in range(4):
            await out.send_and_wait(topic, f"m{i}".encode(), key=b"same-key")
    async with consumer(topic, group_id=group, auto_offset_reset="earliest",
                        enable_auto_commit=False) as first:
        seen = [(await asyncio.wait_for(first.getone(), 20)).value for _ in range(2)]
        await first.commit()
    async with producer() as out:
        await out.send_and_wait(topic, b"m4", key=b"same-key")
    async with consumer(topic, group_id=group, auto_offset_reset="earliest") as second:
        rest = [(await asyncio.wait_for(second.getone(), 20)).value for _ in range(3)]
    assert seen == [b"m0", b"m1"]
    assert rest == [b"m2", b"m3", b"m4"]


async def test_redis_set_get_publish_subscribe() -> None:
    """SET/GET round-trips and a subscriber receives what is published."""
    result = await check_redis()
    assert result.what == "redis"


async def test_redis_append_only_persistence_is_on() -> None:
    """The server the project runs keeps an append-only file, so history survives restarts."""
    client = async_redis_client()
    try:
        config = await client.config_get("appendonly")
    finally:
        await client.aclose()
    assert config["appendonly"] == "yes"


@pytest.mark.parametrize("setting", ["kafka", "redis"])
async def test_unreachable_server_fails_fast_naming_the_address(setting: str) -> None:
    """A server that is down gives an error naming its address within seconds, not a hang."""
    start = time.monotonic()
    with pytest.raises(ServiceUnavailable, match=r"127\.0\.0\.1:1"):
        if setting == "kafka":
            await check_kafka("127.0.0.1:1")
        else:
            await check_redis("redis://127.0.0.1:1/0")
    assert time.monotonic() - start < 15
