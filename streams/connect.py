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
from streams.settings import WorkerSettings

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


@asynccontextmanager
async def admin_client(bootstrap: str | None = None) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit; Kafka errors name the broker."""
    address = bootstrap or kafka_bootstrap()
    admin = AIOKafkaAdminClient(bootstrap_servers=address, request_timeout_ms=CONNECT_TIMEOUT_MS)
    try:
        await admin.start()
    except (KafkaConnectionError, OSError) as exc:
        await admin.close()
        raise ServiceUnavailable("Kafka", address, str(exc) or type(exc).__name__) from exc
    try:
        yield admin
    except KafkaError as exc:
        raise ServiceUnavailable("Kafka", address, f"{type(exc).__name__}: {exc}") from exc
    finally:
        await admin.close()


async def partition_counts(names: Iterable[str], bootstrap: str | None = None) -> dict[str, int]:
    """The partition count of each of ``names`` that exists."""
    async with admin_client(bootstrap) as admin:
        existing = set(await admin.list_topics())
        # Only topics that exist: describing a missing one makes a broker that auto-creates
        # topics create it, with its default partition count.
        wanted = [name for name in names if name in existing]
        found = await admin.describe_topics(wanted) if wanted else []
    return {t["topic"]: len(t["partitions"]) for t in found
            if t["error_code"] == 0 and t["partitions"]}


async def ensure_topics(
    names: dict[str, int], bootstrap: str | None = None, replication: int = 1
) -> None:
    """Create each topic with its partition count unless it exists already."""
    async with admin_client(bootstrap) as admin:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(n, p, replication) for n, p in names.items() if n not in existing]
        if wanted:
            # Another process may create one between the listing and now.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)


async def prepare_topics(settings: WorkerSettings) -> WorkerSettings:
    """Create the worker's topics, adopting the partition count of an events topic that
    exists already; the settings with that count (:meth:`WorkerSettings.adopting`)."""
    existing = await partition_counts([*settings.topics(), settings.topic_changelog],
                                      settings.kafka_bootstrap)
    adopted = settings.adopting(existing)
    await ensure_topics(adopted.topics(), settings.kafka_bootstrap)
    return adopted
