"""Readers and history across an outage and a restart of a private redis-server with its
append-only file (one server for the module, stopped and started by each test): both
readers keep serving their last pointer marked stale while it is down, re-sync once it is
back and follow a flip made after the restart; the history stream keeps its entries."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import pytest

from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import PointerStore
from rollguard.actions.reader import PointerReader, SyncPointerReader
from rollguard.actions.reader_core import ReaderCore
from rollguard.actions.state import PointerState
from rollguard.base.errors import ServiceUnavailable
from tests.support.pointer import SECRET, command, register_two_releases
from tests.support.private_redis import PrivateRedis

pytestmark = [pytest.mark.integration]

ARRIVAL_S = 15.0  # bound on noticing a lost or returned server; waits end at the event
MAX_STALE_S = 0.3


@pytest.fixture(name="aof_redis", scope="module")
def fixture_aof_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """Our own redis-server with ``appendonly yes``, shared by the module's tests."""
    server = PrivateRedis(tmp_path_factory.mktemp("aof-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(name="aof_store")
async def fixture_aof_store(aof_redis: PrivateRedis, service: str,
                            ) -> AsyncIterator[PointerStore]:
    """v1 and v2 registered in the private Redis, v1 promoted (epoch 1)."""
    client = async_redis_client(aof_redis.url)
    store = PointerStore(client, SECRET)
    await register_two_releases(store, service)
    await store.execute(command(service, "promote", release="v1"), time.time())
    yield store
    await client.aclose()


@dataclass
class Watch:
    """What a reader's callbacks saw, from whichever thread they run in."""

    epochs: list[int] = field(default_factory=list)
    stale: threading.Event = field(default_factory=threading.Event)

    def on_change(self, state: PointerState) -> None:
        self.epochs.append(state.epoch)

    def on_stale(self, exc: BaseException) -> None:
        self.stale.set()


async def until(what: str, holds: Callable[..., bool], *args: object) -> None:
    """Wait until ``holds(*args)``: a condition a reader's own task or thread makes true
    (there is no event to await for ``fresh``; the readers set it where they confirm)."""
    deadline = time.monotonic() + ARRIVAL_S
    while not holds(*args):
        if time.monotonic() > deadline:
            raise TimeoutError(f"never: {what}")
        await asyncio.sleep(0.02)


async def readers(stack: AsyncExitStack, url: str, service: str, max_stale_s: float | None,
                  ) -> list[tuple[ReaderCore, Watch]]:
    """An asyncio reader and a threaded one on ``url``, each with its own client."""
    found: list[tuple[ReaderCore, Watch]] = []
    for flavour in ("async", "sync"):
        watch = Watch()
        if flavour == "async":
            reader: ReaderCore = await stack.enter_async_context(PointerReader(
                url, service, watch.on_change, on_stale=watch.on_stale,
                refresh_interval_s=30.0, max_stale_s=max_stale_s))
        else:
            threaded = SyncPointerReader(url, service, watch.on_change, on_stale=watch.on_stale,
                                         refresh_interval_s=30.0, max_stale_s=max_stale_s)
            await asyncio.to_thread(threaded.start)
            stack.push_async_callback(asyncio.to_thread, threaded.stop)
            reader = threaded
        found.append((reader, watch))
    return found


async def test_readers_serve_their_last_pointer_marked_stale_while_redis_is_down(
        aof_redis: PrivateRedis, aof_store: PointerStore, service: str) -> None:
    async with AsyncExitStack() as stack:
        both = await readers(stack, aof_redis.url, service, max_stale_s=None)
        assert all(reader.fresh for reader, _ in both)
        await asyncio.to_thread(aof_redis.stop)
        try:
            for reader, watch in both:
                await until("on_stale called", watch.stale.is_set)
                assert not reader.fresh, "marked stale"
                assert reader.resolve("user-1")[0] == "v1", "the last pointer keeps serving"
                assert reader.state.epoch == 1
        finally:
            await asyncio.to_thread(aof_redis.start)
        for reader, _ in both:
            await until("confirmed again", is_fresh, reader)


async def test_with_max_stale_both_readers_refuse_a_pointer_unconfirmed_too_long(
        aof_redis: PrivateRedis, aof_store: PointerStore, service: str) -> None:
    async with AsyncExitStack() as stack:
        both = await readers(stack, aof_redis.url, service, max_stale_s=MAX_STALE_S)
        await asyncio.to_thread(aof_redis.stop)
        try:
            for reader, _ in both:
                await until("resolve() refuses", refuses, reader)
        finally:
            await asyncio.to_thread(aof_redis.start)
        for reader, _ in both:
            await until("serving again", serves, reader)
            assert reader.resolve("user-1")[0] == "v1"


def is_fresh(reader: ReaderCore) -> bool:
    return reader.fresh


def serves(reader: ReaderCore) -> bool:
    return not refuses(reader)


def refuses(reader: ReaderCore) -> bool:
    try:
        reader.resolve("user-1")
    except ServiceUnavailable as exc:
        assert "unconfirmed" in str(exc)
        return True
    return False


async def test_after_an_append_only_restart_readers_follow_a_new_flip_and_history_is_intact(
        aof_redis: PrivateRedis, aof_store: PointerStore, service: str) -> None:
    async with AsyncExitStack() as stack:
        both = await readers(stack, aof_redis.url, service, max_stale_s=None)
        before = await aof_store.history(service)
        assert [h["op"] for h in before] == ["promote"]
        await asyncio.to_thread(aof_redis.restart)
        # Flipped as soon as the server is back, racing the readers' resubscription: the
        # message or the re-read on resubscribing must bring each to epoch 2.
        outcome = await aof_store.execute(command(service, "promote", release="v2"),
                                          time.time())
        assert (outcome.status, outcome.epoch_after) == ("applied", 2), \
            "the pointer survived the restart (append-only file)"
        for reader, watch in both:
            await until("the flip arrived", watch.epochs.__contains__, 2)
            await until("confirmed", is_fresh, reader)
            assert reader.resolve("user-1") == ("v2", {"model": "m-v2"})
    after = await aof_store.history(service)
    assert after[:len(before)] == before, "entries from before the restart, ids and all"
    assert [(h["op"], h["outcome"]) for h in after[len(before):]] == [("promote", "applied")]
