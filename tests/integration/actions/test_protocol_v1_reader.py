"""A reader written from the pointer protocol as it was before the changes channel named its
database (frozen here, as a Go or Java follower would have it): it still follows every flip,
from the messages alone, through the stated deprecation period (docs/pointer-protocol.md)."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from rollguard.actions.pointer import PointerStore
from tests.support.pointer import Issue

pytestmark = [pytest.mark.integration]
FLIPS = 30


class FrozenV1Reader:
    """Protocol 1 before the database was named: SUBSCRIBE ``rollguard:{S}:changes``, GET
    ``rollguard:{S}:pointer``, apply a message only if its epoch is greater; no safety-net
    poll here, so every flip it sees came by a message."""

    def __init__(self, store: PointerStore, service: str) -> None:
        self.client = store.client
        self.channel = f"rollguard:{{{service}}}:changes"
        self.pointer = f"rollguard:{{{service}}}:pointer"
        self.epoch = 0
        self.by_message = 0

    async def follow(self, ready: asyncio.Event) -> None:
        pubsub = self.client.pubsub()
        await pubsub.subscribe(self.channel)
        raw = await self.client.get(self.pointer)
        self.epoch = orjson.loads(raw)["epoch"] if raw else 0
        ready.set()
        try:
            async for message in pubsub.listen():
                if message["type"] != "message":
                    continue
                value = orjson.loads(message["data"])
                assert value["format"] == 1
                if value["epoch"] > self.epoch:
                    self.epoch = value["epoch"]
                    self.by_message += 1
        finally:
            await pubsub.aclose()


async def test_a_frozen_reader_of_the_earlier_protocol_sees_every_flip(
        released: PointerStore, service: str, issue: Issue) -> None:
    reader = FrozenV1Reader(released, service)
    ready = asyncio.Event()
    task = asyncio.create_task(reader.follow(ready))
    try:
        await asyncio.wait_for(ready.wait(), 5.0)
        start = reader.epoch
        for i in range(FLIPS):
            await issue("promote", release="v2" if i % 2 == 0 else "v1")
        deadline = time.monotonic() + 5.0
        while reader.epoch < start + FLIPS and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert (reader.epoch, reader.by_message) == (start + FLIPS, FLIPS)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
