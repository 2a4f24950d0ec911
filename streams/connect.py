"""Kafka clients with errors that name the broker address instead of hanging."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from rollguard.config import kafka_bootstrap
from rollguard.errors import ServiceUnavailable

# Fail fast when nothing listens: the defaults retry for 40 s before saying anything.
CONNECT_TIMEOUT_MS = 5000


async def _start(client: Any, bootstrap: str) -> None:
    try:
        await client.start()
    except (KafkaConnectionError, OSError) as exc:
        await client.stop() if hasattr(client, "stop") else await client.close()
        raise ServiceUnavailable("Kafka", bootstrap, str(exc) or type(exc).__name__) from exc


@asynccontextmanager
async def producer(bootstrap: str | None = None, **options: Any) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer, stopped (and flushed) on exit."""
    address = bootstrap or kafka_bootstrap()
    options.setdefault("request_timeout_ms", CONNECT_TIMEOUT_MS)
    client = AIOKafkaProducer(bootstrap_servers=address, **options)
    await _start(client, address)
    try:
        yield client
    finally:
        await client.stop()


@asynccontextmanager
async def consumer(
    *topics: str, bootstrap: str | None = None, **options: Any
) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer subscribed to ``topics``, stopped on exit."""
    address = bootstrap or kafka_bootstrap()
    options.setdefault("request_timeout_ms", CONNECT_TIMEOUT_MS)
    client = AIOKafkaConsumer(*topics, bootstrap_servers=address, **options)
    await _start(client, address)
    try:
        yield client
    finally:
        await client.stop()


async def partition_counts(names: Iterable[str], bootstrap: str | None = None) -> dict[str, int]:
    """The partition count of each of ``names`` that exists."""
    address = bootstrap or kafka_bootstrap()
    async with consumer(bootstrap=address, group_id=None) as probe:
        try:
            existing = await probe.topics()
            found = {name: probe.partitions_for_topic(name) for name in names
                     if name in existing}
        except KafkaError as exc:
            raise ServiceUnavailable("Kafka", address, f"reading topics failed: {exc}") from exc
    return {name: len(partitions) for name, partitions in found.items() if partitions}


async def ensure_topics(
    names: dict[str, int], bootstrap: str | None = None, replication: int = 1
) -> None:
    """Create each topic with its partition count unless it exists already."""
    address = bootstrap or kafka_bootstrap()
    admin = AIOKafkaAdminClient(bootstrap_servers=address, request_timeout_ms=CONNECT_TIMEOUT_MS)
    try:
        await admin.start()
    except (KafkaConnectionError, OSError) as exc:
        await admin.close()
        raise ServiceUnavailable("Kafka", address, str(exc) or type(exc).__name__) from exc
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(n, p, replication) for n, p in names.items() if n not in existing]
        if wanted:
            # Another process may create one between the listing and now.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    except KafkaError as exc:
        raise ServiceUnavailable("Kafka", address, f"creating topics failed: {exc}") from exc
    finally:
        await admin.close()
