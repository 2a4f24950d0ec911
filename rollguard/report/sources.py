"""What a report is made of, read once: the service's pointer and history from Redis, and its
records of the audit topic, read from the topic's start to its end as of now."""

from __future__ import annotations

from dataclasses import dataclass
from secrets import token_bytes
from typing import Any

import orjson
from aiokafka import TopicPartition

from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import PointerStore
from rollguard.actions.state import PointerState
from rollguard.base.errors import UnknownService
from rollguard.streams.connect import consumer, partition_counts

HISTORY_READ = 10_000  # entries of the pointer history: years of promotes and rollbacks


@dataclass(frozen=True)
class Evidence:
    pointer: PointerState | None
    history: list[dict[str, Any]]
    records: list[dict[str, Any]]


async def read_redis(service: str, redis_url: str | None = None,
                     ) -> tuple[PointerState | None, list[dict[str, Any]]]:
    """The pointer now (None: none yet) and the history, oldest first."""
    client = async_redis_client(redis_url)
    try:
        store = PointerStore(client, token_bytes(32))  # reads only: it signs nothing
        try:
            pointer: PointerState | None = await store.read(service)
        except UnknownService:
            pointer = None
        return pointer, await store.history(service, count=HISTORY_READ)
    finally:
        await client.aclose()


async def read_audit(topic: str, service: str, bootstrap: str | None = None,
                     ) -> list[dict[str, Any]]:
    """Every record of ``service`` in the audit topic so far, in topic order."""
    count = (await partition_counts([topic], bootstrap)).get(topic)
    if not count:
        return []
    partitions = [TopicPartition(topic, p) for p in range(count)]
    found: list[dict[str, Any] | None] = []
    # From the start by the reset policy: a seek_to_beginning right after assign() raced
    # with the initial reset to the end, and read nothing.
    async with consumer(bootstrap=bootstrap, group_id=None, enable_auto_commit=False,
                        auto_offset_reset="earliest") as source:
        source.assign(partitions)
        ends = await source.end_offsets(partitions)
        left = {tp for tp in partitions if ends[tp] > 0}
        while left:
            batches = await source.getmany(*left, timeout_ms=500)
            for messages in batches.values():
                found.extend(_of(service, m.value) for m in messages)
            left = {tp for tp in left if await source.position(tp) < ends[tp]}
    return [r for r in found if r is not None]


def _of(service: str, value: bytes | None) -> dict[str, Any] | None:
    try:
        record = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and record.get("service") == service else None


async def gather(service: str, audit_topic: str) -> Evidence:
    pointer, history = await read_redis(service)
    return Evidence(pointer, history, await read_audit(audit_topic, service))
